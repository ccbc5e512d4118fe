package soulauth_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/soulapp/soul/api"
	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/contract"
	"github.com/soulapp/soul/internal/soultest"
)

// shieldedCaddyfile is the repository's Caddyfile with a per-IP
// soul_rate_limit in front of the sign-in routes, so the answers of
// soul_auth already hold that policy's fields (with room left) when a
// sign-in limit refuses; and with the per-phone cooldown lifted, so the
// daily cap is reached without waiting a minute between sends.
func shieldedCaddyfile(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(soultest.RepoRoot(), "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for anchor, replacement := range map[string]string{
		"@auth path /api/auth/*":               "@signin path /api/auth/*\n\t\tsoul_rate_limit @signin signin_ip {\n\t\t\tlimit 1000\n\t\t\twindow 1m\n\t\t\tkey ip\n\t\t}\n\n\t\t@auth path /api/auth/*",
		"twilio_timeout {$TWILIO_TIMEOUT:10s}": "twilio_timeout {$TWILIO_TIMEOUT:10s}\n\t\t\t\tlimit otp_send 100 1m",
	} {
		if strings.Count(cfg, anchor) != 1 {
			t.Fatalf("Caddyfile does not have %q exactly once", anchor)
		}
		cfg = strings.Replace(cfg, anchor, replacement, 1)
	}
	return cfg
}

// limitCase drives one sign-in limit to its 429.
type limitCase struct {
	name   string
	code   string
	policy string
	limit  int
	window time.Duration
	refuse func(t *testing.T, s *soultest.Server) *soultest.Response
}

var (
	cooldown = limitCase{"send cooldown", "rate_limited", "otp_send", 1, time.Minute,
		func(t *testing.T, s *soultest.Server) *soultest.Response {
			phone := newPhone()
			newClient(t, s).requestCode(phone)
			// From another IP: the limit is the phone's.
			return newClient(t, s).post(soulauth.PathOTPRequest, map[string]string{"phone": phone})
		}}
	dailySends = limitCase{"daily sends", "rate_limited", "otp_send_day", 10, 24 * time.Hour,
		func(t *testing.T, s *soultest.Server) *soultest.Response {
			phone := newPhone()
			for range 10 {
				newClient(t, s).requestCode(phone)
			}
			return newClient(t, s).post(soulauth.PathOTPRequest, map[string]string{"phone": phone})
		}}
	requestsPerIP = limitCase{"requests per IP", "rate_limited", "otp_request", 5, 5 * time.Minute,
		func(t *testing.T, s *soultest.Server) *soultest.Response {
			c := newClient(t, s)
			for range 5 {
				c.requestCode(newPhone())
			}
			return c.post(soulauth.PathOTPRequest, map[string]string{"phone": newPhone()})
		}}
	verifiesPerIP = limitCase{"verifies per IP", "rate_limited", "otp_verify", 10, 5 * time.Minute,
		func(t *testing.T, s *soultest.Server) *soultest.Response {
			c := newClient(t, s)
			for range 10 {
				soultest.WantProblem(t, c.post(soulauth.PathVerifyOTP, map[string]string{"phone": newPhone(), "code": "123456"}),
					http.StatusUnauthorized, "code_expired")
			}
			return c.post(soulauth.PathVerifyOTP, map[string]string{"phone": newPhone(), "code": "123456"})
		}}
	triesPerCode = limitCase{"tries per code", "too_many_attempts", "otp_attempts", 5, 5 * time.Minute,
		func(t *testing.T, s *soultest.Server) *soultest.Response {
			phone := newPhone()
			code := newClient(t, s).requestCode(phone)
			wrong := fmt.Sprintf("%06d", (mustAtoi(t, code)+1)%1000000)
			for range 5 {
				soultest.WantProblem(t, newClient(t, s).post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": wrong}),
					http.StatusUnauthorized, "invalid_code")
			}
			return newClient(t, s).post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": code})
		}}
)

// A sign-in limit's 429 names the policy that refused in all five
// rate-limit fields, in place of any a policy in front of soul_auth set.
func TestSignInLimitHeaders(t *testing.T) {
	configs := []struct {
		name      string
		caddyfile string
		cases     []limitCase
	}{
		{"production Caddyfile", "", []limitCase{cooldown, requestsPerIP, verifiesPerIP, triesPerCode}},
		{"behind a per-IP policy", shieldedCaddyfile(t), []limitCase{dailySends, requestsPerIP}},
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			s := soultest.Start(t, soultest.Options{Redis: true, Caddyfile: cfg.caddyfile})
			checker, err := contract.New(api.OpenAPI)
			if err != nil {
				t.Fatal(err)
			}
			s.Client.Transport = checker.Transport(t, nil)
			for _, tc := range cfg.cases {
				t.Run(tc.name, func(t *testing.T) {
					resp := tc.refuse(t, s)
					soultest.WantProblem(t, resp, http.StatusTooManyRequests, tc.code)
					wantLimitFields(t, resp, tc.policy, tc.limit, tc.window)
				})
			}
		})
	}
}

var rateLimitField = regexp.MustCompile(`^"([^"]+)";r=(\d+);t=(\d+)$`)

// wantLimitFields checks that a refusal carries Retry-After and exactly one
// value of each rate-limit field, all for policy with no room left.
func wantLimitFields(t *testing.T, resp *soultest.Response, policy string, limit int, window time.Duration) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("429 header: %v", resp.Header)
		}
	}()
	h := resp.Header
	secs := int64(window / time.Second)
	if ra, err := strconv.ParseInt(h.Get("Retry-After"), 10, 64); err != nil || ra < 1 || ra > secs {
		t.Errorf("Retry-After = %q, want 1..%d", h.Get("Retry-After"), secs)
	}
	for _, name := range []string{"RateLimit-Policy", "RateLimit", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if n := len(h.Values(name)); n != 1 {
			t.Errorf("%s has %d values %q, want 1", name, n, h.Values(name))
		}
	}
	if got, want := h.Get("RateLimit-Policy"), fmt.Sprintf(`"%s";q=%d;w=%d`, policy, limit, secs); got != want {
		t.Errorf("RateLimit-Policy = %q, want %q", got, want)
	}
	m := rateLimitField.FindStringSubmatch(h.Get("RateLimit"))
	if m == nil || m[1] != policy || m[2] != "0" || mustAtoi(t, m[3]) < 1 || int64(mustAtoi(t, m[3])) > secs {
		t.Errorf(`RateLimit = %q, want "%s";r=0;t=1..%d`, h.Get("RateLimit"), policy, secs)
	}
	if got := h.Get("X-RateLimit-Limit"); got != strconv.Itoa(limit) {
		t.Errorf("X-RateLimit-Limit = %q, want %d", got, limit)
	}
	if got := h.Get("X-RateLimit-Remaining"); got != "0" {
		t.Errorf("X-RateLimit-Remaining = %q, want 0", got)
	}
	now := time.Now().Unix()
	if at, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err != nil || at <= now || at > now+secs+1 {
		t.Errorf("X-RateLimit-Reset = %q, want unix seconds in (%d, %d]", h.Get("X-RateLimit-Reset"), now, now+secs+1)
	}
}
