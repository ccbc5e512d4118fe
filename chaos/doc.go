// Package chaos holds the reliability suite: the built binary under steady
// load on loopback while Postgres restarts, Redis dies, the config reloads,
// the process gets SIGTERM, and two replicas start on one database. The
// tests carry the chaos build tag; `make chaos` runs them.
package chaos
