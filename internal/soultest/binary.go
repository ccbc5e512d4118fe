package soultest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// EnvBinary names a caddy that `make build` made; tests use it instead of
// building their own.
const EnvBinary = "SOUL_TEST_BINARY"

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// BuildBinary returns the caddy under test: SOUL_TEST_BINARY, or one built
// from cmd/caddy the first time it is called in this test process. Call
// RemoveBinary from TestMain when the tests are done.
func BuildBinary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		return p, nil
	}
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "soul-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		path := filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", path, "./cmd/caddy")
		cmd.Dir = RepoRoot()
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			built.err = fmt.Errorf("building caddy: %w", err)
			return
		}
		built.path = path
	})
	return built.path, built.err
}

// Binary is BuildBinary for a test: it fails the test when there is no
// binary.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := BuildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// RemoveBinary deletes the binary BuildBinary built, if any.
func RemoveBinary() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}
