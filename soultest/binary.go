package soultest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// BinaryEnv is a minimal environment for the binary under test, plus extra:
// no variable of the developer's shell leaks in, and Caddy's storage,
// autosave and admin endpoint stay private to the test.
func BinaryEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"XDG_CONFIG_HOME=" + t.TempDir(),
		"XDG_DATA_HOME=" + t.TempDir(),
		"ADMIN_ADDRESS=127.0.0.1:" + strconv.Itoa(FreePort(t)),
	}
	return append(env, extra...)
}
