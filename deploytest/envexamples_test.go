package deploytest

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

var envExamples = []string{"railway/.env.staging.example", "railway/.env.production.example"}

// readmeVariables returns the variables the README's configuration table
// lists: the backquoted names in the first cell of each row.
func readmeVariables(t *testing.T) []string {
	t.Helper()
	readme := readRepoFile(t, "README.md")
	start := strings.Index(readme, "\n## Configuration\n")
	if start < 0 {
		t.Fatal("README.md has no ## Configuration section")
	}
	section := readme[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]*)`")
	var vars []string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			vars = append(vars, m[1])
		}
	}
	if len(vars) < 10 {
		t.Fatalf("found only %d variables in the README's configuration table: %q", len(vars), vars)
	}
	return vars
}

// envExample is a parsed example: every NAME=value line, commented out or
// not.
type envExample struct {
	set      map[string]string // uncommented
	mentions map[string]string // commented out too
}

var envLine = regexp.MustCompile(`^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$`)

func parseEnvExample(text string) envExample {
	e := envExample{set: map[string]string{}, mentions: map[string]string{}}
	for _, line := range strings.Split(text, "\n") {
		m := envLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		e.mentions[m[2]] = m[3]
		if m[1] == "" {
			e.set[m[2]] = m[3]
		}
	}
	return e
}

// placeholderProblems lists the variables of an example that hold something
// other than a placeholder where a secret goes.
func placeholderProblems(e envExample) []string {
	var bad []string
	for _, k := range []string{"SECRET_KEY", "SECRET_KEY_PREVIOUS", "TWILIO_AUTH_TOKEN", "POSTGRES_PASSWORD", "REDIS_PASSWORD"} {
		if v, ok := e.mentions[k]; ok && v != "" && !strings.Contains(v, "change-me") {
			bad = append(bad, k)
		}
	}
	for _, k := range []string{"DATABASE_URL", "REDIS_URL"} {
		if v := e.mentions[k]; v != "" && !regexp.MustCompile(`^\$\{\{[A-Za-z0-9_-]+\.[A-Z_]+\}\}$`).MatchString(v) {
			bad = append(bad, k)
		}
	}
	return bad
}

func TestEnvExamplesListEveryReadmeVariable(t *testing.T) {
	vars := readmeVariables(t)
	for _, path := range envExamples {
		t.Run(path, func(t *testing.T) {
			e := parseEnvExample(readRepoFile(t, path))
			for _, v := range vars {
				if _, ok := e.mentions[v]; !ok {
					t.Errorf("%s is in the README's configuration table but not here", v)
				}
			}
			if bad := placeholderProblems(e); len(bad) > 0 {
				t.Errorf("not placeholders: %s", strings.Join(bad, ", "))
			}
			for _, k := range []string{"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "CORS_ORIGINS", "DEV_MODE"} {
				if _, ok := e.set[k]; !ok {
					t.Errorf("%s is not set", k)
				}
			}
		})
	}

	staging := parseEnvExample(readRepoFile(t, envExamples[0]))
	production := parseEnvExample(readRepoFile(t, envExamples[1]))
	if staging.set["DEV_MODE"] != "true" {
		t.Errorf("staging DEV_MODE=%q, want true", staging.set["DEV_MODE"])
	}
	if production.set["DEV_MODE"] != "false" {
		t.Errorf("production DEV_MODE=%q, want false", production.set["DEV_MODE"])
	}
	if o := production.set["CORS_ORIGINS"]; o == "" || strings.Contains(o, "*") {
		t.Errorf("production CORS_ORIGINS=%q: exact origins only", o)
	}
	for _, k := range []string{"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_VERIFY_SERVICE_SID"} {
		if production.set[k] == "" {
			t.Errorf("production %s is empty: required", k)
		}
	}
}

// The checks above can fail: a missing variable and a literal secret are found.
func TestEnvExampleChecksFindProblems(t *testing.T) {
	e := parseEnvExample("SECRET_KEY=0123456789abcdef0123456789abcdef\nDATABASE_URL=postgres://soul:pw@db/soul\n# REDIS_URL=${{Redis.REDIS_URL}}\n")
	got := placeholderProblems(e)
	if want := []string{"SECRET_KEY", "DATABASE_URL"}; !slices.Equal(got, want) {
		t.Errorf("found %q, want %q", got, want)
	}
	if _, ok := e.mentions["REDIS_URL"]; !ok {
		t.Error("a commented-out line does not count as listed")
	}
	if _, ok := e.mentions["CORS_ORIGINS"]; ok {
		t.Error("an absent variable counts as listed")
	}
}
