package soulcors_test

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/soulapp/soul/caddymodules/soulcors"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

const (
	app  = "https://app.soulapp.app"
	evil = "https://evil.example"
)

func preflight(s *soultest.Server, path, origin string) *soultest.Response {
	return s.Do(http.MethodOptions, path, nil,
		"Origin", origin,
		"Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
}

// varyOrigin fails unless Vary names Origin exactly once.
func varyOrigin(t *testing.T, what string, r *soultest.Response) {
	t.Helper()
	n := 0
	for _, v := range r.Header.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "Origin") {
				n++
			}
		}
	}
	if n != 1 {
		t.Errorf("%s: Vary = %q, want Origin once", what, r.Header.Values("Vary"))
	}
}

func noCORS(t *testing.T, what string, r *soultest.Response) {
	t.Helper()
	for _, h := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Credentials", "Access-Control-Expose-Headers", "Access-Control-Max-Age"} {
		if v := r.Header.Get(h); v != "" {
			t.Errorf("%s: %s = %q, want none", what, h, v)
		}
	}
}

func allowsOrigin(t *testing.T, what string, r *soultest.Response, origin string) {
	t.Helper()
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("%s: Access-Control-Allow-Origin = %q, want %q", what, got, origin)
	}
	if got := r.Header.Get("Access-Control-Expose-Headers"); got != soulcors.ExposeHeaders {
		t.Errorf("%s: Access-Control-Expose-Headers = %q", what, got)
	}
	if got := r.Header.Get("Access-Control-Allow-Credentials"); got != "" {
		t.Errorf("%s: Access-Control-Allow-Credentials = %q without allow_credentials", what, got)
	}
	varyOrigin(t, what, r)
}

// The production Caddyfile, with CORS_ORIGINS as an operator would write it.
func TestProductionCaddyfileCORS(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Env: map[string]string{
		"CORS_ORIGINS": "HTTPS://App.SoulApp.app/, http://localhost:3000",
	}})

	t.Run("preflight allowed", func(t *testing.T) {
		r := preflight(s, "/api/moods", app)
		if r.StatusCode != http.StatusNoContent || len(r.Body) != 0 {
			t.Fatalf("status %d, body %q", r.StatusCode, r.Body)
		}
		want := map[string]string{
			"Access-Control-Allow-Origin":  app,
			"Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
			"Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key, X-Platform, X-App-Version",
			"Access-Control-Max-Age":       "600",
			// the security headers are on the preflight answer too
			"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
			"X-Content-Type-Options":    "nosniff",
		}
		for h, v := range want {
			if got := r.Header.Get(h); got != v {
				t.Errorf("%s = %q, want %q", h, got, v)
			}
		}
		if got := r.Header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("Access-Control-Allow-Credentials = %q", got)
		}
		varyOrigin(t, "preflight", r)
	})

	t.Run("preflight from another origin", func(t *testing.T) {
		r := preflight(s, "/api/moods", evil)
		if r.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", r.StatusCode)
		}
		if p := r.Problem(t); p.Code != "cors_origin_not_allowed" {
			t.Errorf("code = %q", p.Code)
		}
		noCORS(t, "denied preflight", r)
		varyOrigin(t, "denied preflight", r)
	})

	// otp_request admits 5 requests per IP in 5 minutes: preflights never
	// reach a limiter or the auth handler.
	t.Run("preflight is not limited", func(t *testing.T) {
		for i := 0; i < 30; i++ {
			if r := preflight(s, "/api/auth/otp/request", "http://localhost:3000"); r.StatusCode != http.StatusNoContent {
				t.Fatalf("preflight %d: status %d %s", i+1, r.StatusCode, r.Body)
			}
		}
	})

	t.Run("request allowed", func(t *testing.T) {
		r := s.Do(http.MethodGet, "/healthz", nil, "Origin", app)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status %d", r.StatusCode)
		}
		allowsOrigin(t, "GET /healthz", r, app)
		if r.Header.Get("Access-Control-Allow-Methods") != "" {
			t.Error("an actual request got Access-Control-Allow-Methods")
		}
	})

	t.Run("request from another origin", func(t *testing.T) {
		r := s.Do(http.MethodGet, "/healthz", nil, "Origin", evil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status %d: the API still answers, the browser hides it", r.StatusCode)
		}
		noCORS(t, "other origin", r)
		varyOrigin(t, "other origin", r)
	})

	t.Run("request without origin", func(t *testing.T) {
		r := s.Do(http.MethodGet, "/healthz", nil)
		noCORS(t, "no origin", r)
		varyOrigin(t, "no origin", r)
	})

	t.Run("errors carry CORS", func(t *testing.T) {
		nf := s.Do(http.MethodGet, "/api/nope", nil, "Origin", app)
		if nf.StatusCode != http.StatusNotFound {
			t.Fatalf("GET /api/nope = %d", nf.StatusCode)
		}
		nf.Problem(t)
		allowsOrigin(t, "404", nf, app)

		ua := s.Do(http.MethodGet, "/api/me", nil, "Origin", "http://localhost:3000")
		if ua.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET /api/me = %d", ua.StatusCode)
		}
		ua.Problem(t)
		allowsOrigin(t, "401", ua, "http://localhost:3000")
		if !strings.Contains(ua.Header.Get("Access-Control-Expose-Headers"), "Retry-After") {
			t.Error("Retry-After is not exposed")
		}

		other := s.Do(http.MethodGet, "/api/me", nil, "Origin", evil)
		noCORS(t, "401 to another origin", other)
		varyOrigin(t, "401 to another origin", other)
	})
}

func TestWildcardInDevMode(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Env: map[string]string{"CORS_ORIGINS": "*"}})
	for _, origin := range []string{app, evil, "http://localhost:5173"} {
		r := preflight(s, "/api/moods", origin)
		if r.StatusCode != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("preflight from %s: %d, Allow-Origin %q", origin, r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
		}
		if r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight from %s: credentials allowed with *", origin)
		}
		g := s.Do(http.MethodGet, "/api/nope", nil, "Origin", origin)
		if g.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("GET from %s: Allow-Origin %q", origin, g.Header.Get("Access-Control-Allow-Origin"))
		}
		varyOrigin(t, origin, g)
	}
}

const credentialsCaddyfile = `{
	admin {$ADMIN_ADDRESS}
	persist_config off
	` + soultest.SoulOption + `
}

{$SITE_ADDRESS} {
	soul_cors {
		origins https://app.soulapp.app
		allow_credentials
		max_age 1h
	}
	respond "ok"

	handle_errors {
		soul_cors {
			origins https://app.soulapp.app
			allow_credentials
		}
		soul_problem
	}
}
`

func TestCredentials(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Caddyfile: credentialsCaddyfile,
		Unchecked: "a Caddyfile with routes of its own, outside the API"})

	r := preflight(s, "/api/moods", app)
	if r.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight: %d", r.StatusCode)
	}
	if got := r.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Errorf("preflight: Allow-Credentials = %q", got)
	}
	if got := r.Header.Get("Access-Control-Max-Age"); got != "3600" {
		t.Errorf("preflight: Max-Age = %q, want 3600", got)
	}
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != app {
		t.Errorf("preflight: Allow-Origin = %q", got)
	}

	g := s.Do(http.MethodGet, "/", nil, "Origin", app)
	if g.Header.Get("Access-Control-Allow-Credentials") != "true" || g.Header.Get("Access-Control-Allow-Origin") != app {
		t.Errorf("GET: Allow-Credentials %q, Allow-Origin %q", g.Header.Get("Access-Control-Allow-Credentials"), g.Header.Get("Access-Control-Allow-Origin"))
	}

	for _, r := range []*soultest.Response{preflight(s, "/", evil), s.Do(http.MethodGet, "/", nil, "Origin", evil)} {
		noCORS(t, r.Request.Method+" from another origin", r)
	}
}

// load adapts and loads a Caddyfile the way soultest does, for configs
// that must fail to load.
func load(t *testing.T, cfg string, env map[string]string) error {
	t.Helper()
	base := map[string]string{
		"DEV_MODE":        "true",
		"SECRET_KEY":      soultest.RandomHex(32),
		"ADMIN_ADDRESS":   "127.0.0.1:" + strconv.Itoa(soultest.FreePort(t)),
		"SITE_ADDRESS":    "http://127.0.0.1:" + strconv.Itoa(soultest.FreePort(t)),
		"SQLITE_PATH":     filepath.Join(t.TempDir(), "soul.db"),
		"DATABASE_URL":    "",
		"REDIS_URL":       "",
		"CORS_ORIGINS":    "",
		"LOG_LEVEL":       "ERROR",
		"XDG_CONFIG_HOME": t.TempDir(),
		"XDG_DATA_HOME":   t.TempDir(),
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		t.Setenv(k, v)
	}
	js, err := soultest.Adapt(cfg)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	err = caddy.Load(js, true)
	if err == nil {
		_ = caddy.Stop()
	}
	return err
}

func site(directive string) string {
	return "{\n\tadmin {$ADMIN_ADDRESS}\n\tpersist_config off\n\t" + soultest.SoulOption + "\n}\n\n{$SITE_ADDRESS} {\n\t" + directive + "\n\trespond ok\n}\n"
}

func TestRefusedAtProvision(t *testing.T) {
	cases := []struct {
		name, directive string
		env             map[string]string
		want            string
	}{
		{"wildcard with credentials", "soul_cors {\n\t\torigins *\n\t\tallow_credentials\n\t}", nil, "allow_credentials"},
		{"wildcard from CORS_ORIGINS with credentials", "soul_cors {\n\t\torigins {$CORS_ORIGINS}\n\t\tallow_credentials\n\t}", map[string]string{"CORS_ORIGINS": "*"}, "allow_credentials"},
		{"origin with a path", "soul_cors {\n\t\torigins https://app.soulapp.app/home\n\t}", nil, "no path"},
		{"subdomain wildcard", "soul_cors {\n\t\torigins https://*.soulapp.app\n\t}", nil, "wildcards"},
		{"placeholder list", "soul_cors {\n\t\torigins {env.SOUL_TEST_ORIGINS}\n\t}", map[string]string{"SOUL_TEST_ORIGINS": "https://a.example, ftp//b"}, "no scheme"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := load(t, site(tc.directive), tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("load error = %v, want one about %q", err, tc.want)
			}
		})
	}
}

// With DEV_MODE=false (and everything else production needs), an explicit
// `*` is refused even though CORS_ORIGINS itself is a proper list.
func TestWildcardRefusedInProduction(t *testing.T) {
	env := map[string]string{
		"DEV_MODE":                  "false",
		"SECRET_KEY":                soultest.RandomHex(32),
		"DATABASE_URL":              testservices.NewDatabase(t),
		"REDIS_URL":                 testservices.RedisURL(t),
		"CORS_ORIGINS":              app,
		"TWILIO_ACCOUNT_SID":        "AC00000000000000000000000000000000",
		"TWILIO_AUTH_TOKEN":         "test-token",
		"TWILIO_VERIFY_SERVICE_SID": "VA00000000000000000000000000000000",
	}
	err := load(t, site("soul_cors {\n\t\torigins *\n\t}"), env)
	if err == nil || !strings.Contains(err.Error(), "soul_cors") || !strings.Contains(err.Error(), "DEV_MODE=true") {
		t.Fatalf("load error = %v, want soul_cors refusing * outside DEV_MODE", err)
	}
	// The same environment with the list loads: the refusal is about `*`.
	if err := load(t, site("soul_cors {\n\t\torigins {$CORS_ORIGINS}\n\t}"), env); err != nil {
		t.Fatalf("production config with CORS_ORIGINS: %v", err)
	}
}

// The shield's 429 is written by the error routes: the page can still
// read it, Retry-After included; preflights are not counted.
func TestCORSOnRateLimitedAnswer(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Env: map[string]string{
		"CORS_ORIGINS":             app,
		"RATE_LIMIT_SHIELD_EVENTS": "3",
		"RATE_LIMIT_SHIELD_WINDOW": "1m",
	}})
	var limited *soultest.Response
	for i := 0; i < 10 && limited == nil; i++ {
		if r := preflight(s, "/api/nope", app); r.StatusCode != http.StatusNoContent {
			t.Fatalf("preflight %d: %d", i+1, r.StatusCode)
		}
		if r := s.Do(http.MethodGet, "/api/nope", nil, "Origin", app); r.StatusCode == http.StatusTooManyRequests {
			limited = r
		}
	}
	if limited == nil {
		t.Fatal("no 429 after 10 requests with a shield of 3")
	}
	limited.Problem(t)
	allowsOrigin(t, "429", limited, app)
	if limited.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}
