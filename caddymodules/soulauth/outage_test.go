package soulauth_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// With Postgres down, every sign-in route answers 503 service_unavailable
// with Retry-After, as the moods routes do, rather than a 500 that tells a
// client nothing; once Postgres is back, sign-in works again without a
// restart.
func TestSignInWhileDatabaseIsDown(t *testing.T) {
	pg := testservices.StartPostgres(t)
	s := soultest.Start(t, soultest.Options{DatabaseURL: pg.URL()})
	c := newClient(t, s)
	pair := c.signIn(newPhone())
	phone := newPhone()
	code := c.requestCode(phone)

	pg.Stop()
	for _, tc := range []struct {
		name, path string
		body       any
	}{
		{"otp/request", soulauth.PathOTPRequest, map[string]string{"phone": newPhone()}},
		{"verify-otp", soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": code}},
		{"refresh", soulauth.PathRefresh, map[string]string{"refresh_token": pair.RefreshToken}},
		{"logout", soulauth.PathLogout, map[string]string{"refresh_token": pair.RefreshToken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := c.post(tc.path, tc.body)
			soultest.WantProblem(t, resp, http.StatusServiceUnavailable, "service_unavailable")
			if resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
	if resp := c.withToken(http.MethodGet, "/api/me", pair.AccessToken); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /api/me with the database down: %d %s, want 503", resp.StatusCode, resp.Body)
	}

	pg.Start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp := c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": code})
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sign-in after Postgres returned: %d %s", resp.StatusCode, resp.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
