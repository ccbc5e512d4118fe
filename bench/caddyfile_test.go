package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The bench Caddyfile is the production one plus bench-only lines: every
// line of production (after its opening comment) must appear in it, in
// order, so a benchmark never measures a configuration that has drifted.
func TestBenchCaddyfileFollowsProduction(t *testing.T) {
	read := func(path string) []string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(string(b), "\n")
	}
	prod := read(filepath.Join("..", "Caddyfile"))
	bench := read("Caddyfile.bench")
	for len(prod) > 0 && strings.HasPrefix(prod[0], "#") {
		prod = prod[1:]
	}
	j := 0
	for i, line := range prod {
		for j < len(bench) && bench[j] != line {
			j++
		}
		if j == len(bench) {
			t.Fatalf("bench/Caddyfile.bench lacks production line %d %q (or has it out of order)", i+1, line)
		}
		j++
	}
}
