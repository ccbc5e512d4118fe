// Package testservices hands tests the real Postgres and Redis that `make test`
// starts on loopback (scripts/testenv.sh), and can start private ones for tests
// that need to stop and restart a server, a PgBouncer in front of a
// Postgres (StartPgBouncer), or a private Redis Cluster (StartRedisCluster,
// SharedRedisCluster) from the same redis-server.
//
// Outside `make test` the variables are unset and tests that need a server are
// skipped, unless SOUL_TEST_REQUIRE_SERVICES=1 (set by `make test`), where a
// missing server fails the test instead: a suite that silently skipped its
// database tests would prove nothing.
package testservices

import (
	"os"
	"testing"
)

// Environment variables set by scripts/testenv.sh.
const (
	EnvDatabaseURL = "SOUL_TEST_DATABASE_URL"
	EnvRedisURL    = "SOUL_TEST_REDIS_URL"
	EnvRequire     = "SOUL_TEST_REQUIRE_SERVICES"

	// For tests that start private servers: the Postgres bin directory
	// (initdb, pg_ctl), the redis-server executable, and the directory
	// their data goes in, where scripts/testenv.sh finds and stops servers
	// that a crashed test binary left running.
	EnvPGBinDir    = "SOUL_TEST_PG_BINDIR"
	EnvRedisServer = "SOUL_TEST_REDIS_SERVER"
	EnvTmpDir      = "SOUL_TEST_TMPDIR"

	// EnvChromium is a headless browser (Debian's chromium), for the test
	// that the documentation page renders under its CSP.
	EnvChromium = "SOUL_TEST_CHROMIUM"
)

// Chromium returns the path of the test browser.
func Chromium(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvChromium, "Chromium")
}

// PostgresURL returns the URL of the shared test Postgres (a superuser
// connection to its maintenance database).
func PostgresURL(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvDatabaseURL, "Postgres")
}

// RedisURL returns the URL of the shared test Redis.
func RedisURL(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvRedisURL, "Redis")
}

func lookup(t testing.TB, name, what string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("%s is required but %s is unset", what, name)
	}
	t.Skipf("%s not available: %s is unset (run `make test`)", what, name)
	return ""
}
