package soultest

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
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

// SearchLogs fails t when logs hold any of secrets, or any of codes standing
// alone: six digits also occur inside timestamps, durations and ids,
// so a code is matched only between non-digits. The
// search is only worth something if the run was logged: logs must hold
// every line of want.
func SearchLogs(t testing.TB, logs []byte, want, secrets, codes []string) {
	t.Helper()
	for _, w := range want {
		if !bytes.Contains(logs, []byte(w)) {
			t.Fatalf("the logs lack %q; is the capture working?\n%s", w, logs)
		}
	}
	for _, sec := range secrets {
		if bytes.Contains(logs, []byte(sec)) {
			t.Errorf("the logs contain a secret of the run (%d characters)", len(sec))
		}
	}
	for _, code := range codes {
		if regexp.MustCompile(`(^|[^0-9])` + regexp.QuoteMeta(code) + `([^0-9]|$)`).Match(logs) {
			t.Error("the logs contain a code of the run")
		}
	}
}
