package deploytest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/soulapp/soul/soultest"
)

// composeService is the part of a Compose service these tests read.
type composeService struct {
	Image       string         `yaml:"image"`
	Build       map[string]any `yaml:"build"`
	EnvFile     any            `yaml:"env_file"`
	Environment any            `yaml:"environment"`
	Command     any            `yaml:"command"`
	Ports       []string       `yaml:"ports"`
	Volumes     []string       `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
		Retries  int      `yaml:"retries"`
	} `yaml:"healthcheck"`
	Restart string `yaml:"restart"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

// secretNames hold secrets: in the compose file their values may only be
// ${VAR} references.
var secretNames = []string{"SECRET_KEY", "SECRET_KEY_PREVIOUS", "TWILIO_AUTH_TOKEN", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "REDISCLI_AUTH"}

// urlNames hold URLs whose password may only be a ${VAR} reference.
var urlNames = []string{"DATABASE_URL", "REDIS_URL"}

var (
	composeRef  = regexp.MustCompile(`^\$\{[A-Z_][A-Z0-9_]*(:?[-?][^}]*)?\}$`)
	urlPassword = regexp.MustCompile(`^[a-z+]+://[^:/@]*:([^@]*)@`)
)

// environment returns a service's environment as a map, from either of
// Compose's two forms.
func environment(v any) map[string]string {
	env := map[string]string{}
	switch e := v.(type) {
	case map[string]any:
		for k, val := range e {
			env[k] = fmt.Sprint(val)
		}
	case []any:
		for _, item := range e {
			k, val, _ := strings.Cut(fmt.Sprint(item), "=")
			env[k] = val
		}
	}
	return env
}

// literalSecrets lists the secrets a service's environment or command
// holds literally.
func literalSecrets(svc composeService) []string {
	var bad []string
	for k, v := range environment(svc.Environment) {
		if slices.Contains(secretNames, k) && !composeRef.MatchString(v) {
			bad = append(bad, k)
		}
		if slices.Contains(urlNames, k) {
			if m := urlPassword.FindStringSubmatch(v); m != nil && !composeRef.MatchString(m[1]) {
				bad = append(bad, k+" password")
			}
		}
	}
	if cmd, ok := svc.Command.([]any); ok {
		for i, arg := range cmd {
			if fmt.Sprint(arg) == "--requirepass" && i+1 < len(cmd) && !composeRef.MatchString(fmt.Sprint(cmd[i+1])) {
				bad = append(bad, "command --requirepass")
			}
		}
	} else if s, ok := svc.Command.(string); ok && regexp.MustCompile(`--requirepass\s+[^$\s]`).MatchString(s) {
		bad = append(bad, "command --requirepass")
	}
	return bad
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "docker-compose.prod.yml")), &c); err != nil {
		t.Fatalf("docker-compose.prod.yml: %v", err)
	}
	return c
}

func TestComposeFile(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"api", "postgres", "redis"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("no %s service", name)
		}
	}

	for name, svc := range c.Services {
		t.Run(name, func(t *testing.T) {
			if len(svc.Healthcheck.Test) < 2 || (svc.Healthcheck.Test[0] != "CMD" && svc.Healthcheck.Test[0] != "CMD-SHELL") {
				t.Errorf("healthcheck.test %q: want [CMD ...] or [CMD-SHELL ...]", svc.Healthcheck.Test)
			}
			if svc.Healthcheck.Interval == "" || svc.Healthcheck.Retries < 1 {
				t.Errorf("healthcheck without interval or retries")
			}
			if svc.Restart != "unless-stopped" && svc.Restart != "always" {
				t.Errorf("restart %q: want unless-stopped or always", svc.Restart)
			}
			if len(svc.Volumes) == 0 {
				t.Errorf("no volume: its data would not outlive the container")
			}
			for _, v := range svc.Volumes {
				vol, _, _ := strings.Cut(v, ":")
				if _, ok := c.Volumes[vol]; !ok {
					t.Errorf("volume %s is not declared", vol)
				}
			}
			if bad := literalSecrets(svc); len(bad) > 0 {
				t.Errorf("secrets with literal values: %s", strings.Join(bad, ", "))
			}
		})
	}

	api := c.Services["api"]
	t.Run("api image", func(t *testing.T) {
		if api.Build["dockerfile"] != "docker/Dockerfile" || api.Build["context"] != "." {
			t.Errorf("build %v: want context . and docker/Dockerfile", api.Build)
		}
		if !slices.Equal(api.Healthcheck.Test, []string{"CMD", "caddy", "soul", "healthcheck"}) {
			t.Errorf("healthcheck %q: want caddy soul healthcheck", api.Healthcheck.Test)
		}
		files := fmt.Sprint(api.EnvFile)
		if !strings.Contains(files, ".env.production") {
			t.Errorf("env_file %s: want .env.production", files)
		}
		for _, p := range []string{"80:80", "443:443"} {
			if !slices.Contains(api.Ports, p) {
				t.Errorf("port %s not published: TLS is terminated here", p)
			}
		}
		env := environment(api.Environment)
		if !strings.Contains(env["SITE_ADDRESS"], "${SITE_ADDRESS") {
			t.Errorf("SITE_ADDRESS %q does not come from the environment", env["SITE_ADDRESS"])
		}
		for _, dep := range []string{"postgres", "redis"} {
			if api.DependsOn[dep].Condition != "service_healthy" {
				t.Errorf("depends_on %s: want condition service_healthy", dep)
			}
		}
	})

	// The binary terminates TLS itself: no peer is a proxy, so none may
	// choose the client IP with X-Forwarded-For.
	t.Run("api trusts no proxy", func(t *testing.T) {
		env := environment(api.Environment)
		value, ok := env["TRUSTED_PROXIES"]
		if !ok {
			t.Fatal("TRUSTED_PROXIES not set: the default private_ranges trusts every container on the network")
		}
		if ranges := trustedProxies(t, value); len(ranges) > 0 {
			t.Errorf("TRUSTED_PROXIES %q trusts %v, want no one", value, ranges)
		}
	})

	t.Run("database images pinned", func(t *testing.T) {
		exact := regexp.MustCompile(`^[a-z0-9./-]+:\d+\.\d+(\.\d+)?[A-Za-z0-9.-]*(@sha256:[0-9a-f]{64})?$`)
		for _, name := range []string{"postgres", "redis"} {
			if img := c.Services[name].Image; !exact.MatchString(img) {
				t.Errorf("%s image %q: want an exact version tag", name, img)
			}
		}
	})
}

// The secret check itself finds literal secrets.
func TestComposeSecretCheckFindsLiterals(t *testing.T) {
	const bad = `
services:
  api:
    environment:
      SECRET_KEY: abcdefabcdefabcdefabcdefabcdefabcdef
      DATABASE_URL: postgres://soul:hunter2@postgres:5432/soul
      REDIS_URL: redis://:${REDIS_PASSWORD}@redis:6379/0
  redis:
    command: ["redis-server", "--requirepass", "hunter2"]
  postgres:
    environment:
      - POSTGRES_PASSWORD=hunter2
`
	var c composeFile
	if err := yaml.Unmarshal([]byte(bad), &c); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for name, svc := range c.Services {
		got[name] = literalSecrets(svc)
		slices.Sort(got[name])
	}
	want := map[string][]string{
		"api":      {"DATABASE_URL password", "SECRET_KEY"},
		"redis":    {"command --requirepass"},
		"postgres": {"POSTGRES_PASSWORD"},
	}
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("%s: found %q, want %q", name, got[name], w)
		}
	}
}

// trustedProxies adapts the repository's Caddyfile with TRUSTED_PROXIES set
// to value and returns the ranges every server trusts.
func trustedProxies(t *testing.T, value string) []string {
	t.Helper()
	t.Setenv("TRUSTED_PROXIES", value)
	t.Setenv("SITE_ADDRESS", "api.soulapp.test, :8080")
	out, err := soultest.Adapt(readRepoFile(t, "Caddyfile"))
	if err != nil {
		t.Fatalf("adapting the Caddyfile: %v", err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					TrustedProxies *struct {
						Source string   `json:"source"`
						Ranges []string `json:"ranges"`
					} `json:"trusted_proxies"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Apps.HTTP.Servers) == 0 {
		t.Fatal("the adapted Caddyfile has no server")
	}
	var ranges []string
	for name, srv := range cfg.Apps.HTTP.Servers {
		if srv.TrustedProxies == nil || srv.TrustedProxies.Source != "static" {
			t.Fatalf("server %s: trusted_proxies %+v, want the static source", name, srv.TrustedProxies)
		}
		ranges = append(ranges, srv.TrustedProxies.Ranges...)
	}
	return ranges
}

// The check above finds the default's trust.
func TestTrustedProxiesCheckFindsDefault(t *testing.T) {
	if ranges := trustedProxies(t, "private_ranges"); !slices.Contains(ranges, "172.16.0.0/12") {
		t.Errorf("private_ranges adapts to %v, want the docker bridge's 172.16.0.0/12 among them", ranges)
	}
}
