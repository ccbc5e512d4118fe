package soulcors

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestCompileOrigins(t *testing.T) {
	cases := []struct {
		name        string
		origins     []string
		dev, creds  bool
		wantErr     string
		allow, deny []string
	}{
		{name: "exact", origins: []string{"https://app.soulapp.app"},
			allow: []string{"https://app.soulapp.app"}, deny: []string{"https://evil.example", "http://app.soulapp.app", "https://app.soulapp.app:8443", "null"}},
		{name: "normalised", origins: []string{"HTTPS://App.SoulApp.app:443/", "http://localhost:3000"},
			allow: []string{"https://app.soulapp.app", "http://localhost:3000"}, deny: []string{"http://localhost:3001", "http://localhost"}},
		{name: "ipv6", origins: []string{"http://[::1]:8080"}, allow: []string{"http://[::1]:8080"}},
		{name: "none", deny: []string{"https://app.soulapp.app"}},
		{name: "wildcard in dev mode", origins: []string{"*"}, dev: true, allow: []string{"https://anything.example"}},
		{name: "wildcard in production", origins: []string{"*"}, wantErr: "DEV_MODE=true"},
		{name: "wildcard with credentials", origins: []string{"*"}, dev: true, creds: true, wantErr: "allow_credentials"},
		{name: "credentials with exact origins", origins: []string{"https://app.soulapp.app"}, creds: true, allow: []string{"https://app.soulapp.app"}},
		{name: "subdomain wildcard", origins: []string{"https://*.soulapp.app"}, dev: true, wantErr: "wildcards"},
		{name: "path", origins: []string{"https://app.soulapp.app/login"}, wantErr: "no path"},
		{name: "query", origins: []string{"https://app.soulapp.app?x=1"}, wantErr: "no path"},
		{name: "no scheme", origins: []string{"app.soulapp.app"}, wantErr: "no scheme"},
		{name: "null", origins: []string{"null"}, wantErr: "no scheme"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set, err := compileOrigins(tc.origins, tc.dev, tc.creds)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one about %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h := &Handler{allowed: set.exact, any: set.any}
			for _, o := range tc.allow {
				if !h.allows(o) {
					t.Errorf("%s not allowed", o)
				}
			}
			for _, o := range tc.deny {
				if h.allows(o) {
					t.Errorf("%s allowed", o)
				}
			}
		})
	}
}

// In the error routes the handler only decorates: a preflight that failed
// (403 for an unknown origin) must not be answered again there.
func TestErrorRouteOnlyAddsHeaders(t *testing.T) {
	h := &Handler{allowed: map[string]struct{}{"https://app.soulapp.app": {}}, maxAge: "600"}
	for _, origin := range []string{"https://app.soulapp.app", "https://evil.example"} {
		r := httptest.NewRequest(http.MethodOptions, "/api/moods", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		r = (&caddyhttp.HTTPErrorConfig{}).WithError(withReplacer(r), caddyhttp.Error(http.StatusForbidden, errors.New("refused")))
		w := httptest.NewRecorder()
		w.Header().Set("Vary", "Accept-Encoding, origin")
		called := false
		err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			called = true
			return nil
		}))
		if err != nil || !called {
			t.Fatalf("%s: err = %v, next called = %v", origin, err, called)
		}
		if got := w.Header().Values("Vary"); len(got) != 1 {
			t.Errorf("%s: Vary = %q, want Origin named once", origin, got)
		}
		if m := w.Header().Get("Access-Control-Allow-Methods"); m != "" {
			t.Errorf("%s: error answer carries Access-Control-Allow-Methods %q", origin, m)
		}
	}
}
