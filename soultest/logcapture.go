package soultest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CaptureLogs returns caddyfile with Caddy's logs at DEBUG written to a
// file in a temporary directory, and a function that reads that file, for
// tests that look for what must never be logged. The global log block
// must carry the repository Caddyfile's `level {$LOG_LEVEL:INFO}` line;
// any log that writes to stderr (the access log) goes to the same file.
func CaptureLogs(t testing.TB, caddyfile string) (config string, read func() []byte) {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	const anchor = "level {$LOG_LEVEL:INFO}"
	if !strings.Contains(caddyfile, anchor) {
		t.Fatalf("Caddyfile has no %q", anchor)
	}
	config = strings.Replace(caddyfile, anchor, "output file "+logFile+"\n\t\tlevel DEBUG", 1)
	config = strings.ReplaceAll(config, "output stderr", "output file "+logFile)
	return config, func() []byte {
		t.Helper()
		b, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatalf("reading the captured logs: %v", err)
		}
		return b
	}
}
