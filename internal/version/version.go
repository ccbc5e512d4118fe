// Package version carries the release identifier shown by /healthz and the
// logs. The build sets it with -ldflags "-X ...version.Version=<tag>".
package version

// Version is the release of this binary; "dev" for an unstamped build.
var Version = "dev"
