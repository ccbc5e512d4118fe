package soulauth_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/soulapp/soul/internal/auth"
)

// TestDocsNameEverySignInLimit checks that the texts listing the sign-in
// limits by name (the overrides' field, the Caddyfile directive, the
// README's metrics) list exactly the rules of auth.Limits, in their order.
func TestDocsNameEverySignInLimit(t *testing.T) {
	limits := auth.DefaultLimits()
	var want []string
	for _, r := range limits.Rules() {
		want = append(want, r.Name)
	}
	// A comment's lines joined into one text.
	joined := regexp.MustCompile(`\n\s*//\s*`)
	for _, doc := range []struct{ file, list string }{
		{"soulauth.go", `sign-in rate limits, by rule name: ([a-z_, ]+)\.`},
		{"caddyfile.go", `sign-in rate limit \(([a-z_, ]+)\)`},
		{"../../README.md", "`soul_auth`'s sign-in limits ([a-z_, ]+)\\)"},
	} {
		b, err := os.ReadFile(doc.file)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(doc.list).FindSubmatch(joined.ReplaceAll(b, []byte(" ")))
		if m == nil {
			t.Errorf("%s: no list of the sign-in limits matches %s", doc.file, doc.list)
			continue
		}
		if got := strings.Split(string(m[1]), ", "); !slices.Equal(got, want) {
			t.Errorf("%s names the sign-in limits %q, want %q", doc.file, got, want)
		}
	}
}
