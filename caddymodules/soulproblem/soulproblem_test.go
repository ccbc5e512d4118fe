package soulproblem_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/soulapp/soul/soultest"
)

func TestCaddysOwnErrorsAreProblems(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite})

	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"unknown route", http.MethodGet, "/nope", nil, http.StatusNotFound, "not_found"},
		{"unknown api route", http.MethodGet, "/api/nope", nil, http.StatusNotFound, "not_found"},
		{"body over 64 KiB", http.MethodPost, "/api/nope", strings.Repeat("a", 64*1024+1), http.StatusRequestEntityTooLarge, "payload_too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.Do(tc.method, tc.path, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tc.status, resp.Body)
			}
			p := resp.Problem(t)
			if p.Code != tc.code {
				t.Errorf("code = %q, want %q", p.Code, tc.code)
			}
			if p.Type != "https://api.soulapp.app/problems/"+tc.code {
				t.Errorf("type = %q", p.Type)
			}
			// The security headers apply to errors too.
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Strict-Transport-Security") == "" {
				t.Errorf("security headers missing: %v", resp.Header)
			}
			if resp.Header.Get("Server") != "" {
				t.Errorf("Server header present: %q", resp.Header.Get("Server"))
			}
		})
	}
}

// The shield's 429 goes through the same renderer with its Retry-After.
func TestRateLimitErrorIsAProblem(t *testing.T) {
	s := soultest.Start(t, soultest.Options{
		Unchecked: "a Caddyfile with a route of its own, outside the API",
		Caddyfile: `{
	admin {$ADMIN_ADDRESS}
	` + soultest.SoulOption + `
}
{$SITE_ADDRESS} {
	handle /healthz {
		respond "ok"
	}
	handle {
		soul_shield {
			events 1
			window 1m
		}
		respond "hello"
	}
	handle_errors {
		soul_problem
	}
}
`,
	})
	if resp := s.Do(http.MethodGet, "/limited", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request = %d", resp.StatusCode)
	}
	resp := s.Do(http.MethodGet, "/limited", nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second request = %d, want 429", resp.StatusCode)
	}
	if p := resp.Problem(t); p.Code != "rate_limited" {
		t.Errorf("code = %q", p.Code)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}
