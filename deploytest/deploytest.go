// Package deploytest holds the tests of the deployment files: docker/Dockerfile
// and .dockerignore, docker-compose.prod.yml, railway.json, the environment
// examples under railway/, and the backup and restore scripts. They check
// what an operator relies on (the image builds the way `make build` does,
// no secret is committed, docs and examples agree, a backup restores), so a
// change that breaks a deploy fails `make test` rather than a release.
package deploytest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// repoRoot returns the repository's root directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), ".."))
}

// readRepoFile returns a file of the repository, failing the test when it
// cannot be read.
func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pathMatch is filepath.Match on slash-separated paths.
func pathMatch(pattern, name string) (bool, error) {
	return filepath.Match(filepath.FromSlash(pattern), filepath.FromSlash(name))
}
