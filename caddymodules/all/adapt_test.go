package all_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/soulapp/soul/soultest"
)

// testdata/*.caddyfiletest hold a Caddyfile, a line of dashes, and the JSON
// it must adapt to (the format of Caddy's own caddyfile_adapt tests).
func TestAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt tests: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.SplitN(string(data), "----------", 2)
			if len(parts) != 2 {
				t.Fatalf("%s: no ---------- separator", f)
			}
			caddytest.AssertAdapt(t, strings.TrimSpace(parts[0])+"\n", "caddyfile", strings.TrimSpace(parts[1]))
		})
	}
}

func TestAdaptErrors(t *testing.T) {
	cases := map[string]string{
		"unknown soul subdirective":        "{\n\tsoul {\n\t\tsecret_sauce 1\n\t}\n}\n",
		"soul option argument":             "{\n\tsoul extra\n}\n",
		"soul bool not a bool":             "{\n\tsoul {\n\t\tdev_mode maybe\n\t}\n}\n",
		"soul statements not a bool":       "{\n\tsoul {\n\t\tdatabase_prepared_statements sometimes\n\t}\n}\n",
		"soul number not a number":         "{\n\tsoul {\n\t\trate_limit_ipv6_prefix wide\n\t}\n}\n",
		"soul duration not a duration":     "{\n\tsoul {\n\t\trate_limit_redis_timeout soon\n\t}\n}\n",
		"soul subdirective two values":     "{\n\tsoul {\n\t\tdev_mode true false\n\t}\n}\n",
		"unknown soul_health subdirective": ":80 {\n\tsoul_health {\n\t\tcolour red\n\t}\n}\n",
		"bad soul_health timeout":          ":80 {\n\tsoul_health {\n\t\tdatabase_timeout soon\n\t}\n}\n",
		"soul_problem argument":            ":80 {\n\tsoul_problem loudly\n}\n",
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := soultest.Adapt(cfg); err == nil {
				t.Fatalf("adapted without error:\n%s", cfg)
			}
		})
	}
}

// The production Caddyfile adapts without warnings, keeps every secret out
// of the JSON (runtime {env.*} placeholders only) and wires our handlers.
func TestProductionCaddyfile(t *testing.T) {
	for k, v := range map[string]string{
		"SITE_ADDRESS": ":8080", "SECRET_KEY": "do-not-leak-this-secret-key-0123456789",
		"DATABASE_URL": "postgres://soul:hunter2@db:5432/soul", "TWILIO_AUTH_TOKEN": "twilio-secret-token",
	} {
		t.Setenv(k, v)
	}
	data, err := os.ReadFile(filepath.Join(soultest.RepoRoot(), "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := soultest.Adapt(string(data))
	if err != nil {
		t.Fatal(err)
	}
	js := string(out)
	for _, secret := range []string{"do-not-leak-this-secret-key", "hunter2", "twilio-secret-token"} {
		if strings.Contains(js, secret) {
			t.Errorf("adapted config holds the secret %q", secret)
		}
	}
	var cfg struct {
		Apps struct {
			Soul map[string]string `json:"soul"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	for field, v := range cfg.Apps.Soul {
		if !strings.HasPrefix(v, "{env.") {
			t.Errorf("soul.%s = %q, want an {env.*} placeholder", field, v)
		}
	}
	for _, want := range []string{`"handler":"soul_health"`, `"handler":"soul_problem"`, `"max_size":65536`, `"Strict-Transport-Security"`, `"trusted_proxies"`} {
		if !strings.Contains(js, want) {
			t.Errorf("adapted config lacks %s", want)
		}
	}
}
