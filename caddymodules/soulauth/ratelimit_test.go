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

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/twilio/twiliotest"
	"github.com/soulapp/soul/soultest"
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
		"@auth path /api/auth/*":                                 "@signin path /api/auth/*\n\t\tsoul_rate_limit @signin signin_ip {\n\t\t\tlimit 1000\n\t\t\twindow 1m\n\t\t\tkey ip\n\t\t}\n\n\t\t@auth path /api/auth/*",
		"refresh_token_expire_days {$REFRESH_TOKEN_EXPIRE_DAYS}": "refresh_token_expire_days {$REFRESH_TOKEN_EXPIRE_DAYS}\n\t\t\t\tlimit otp_send 100 1m",
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
	wantFields(t, resp, policy, limit, window, 0, 1)
}

// wantFields checks that resp carries exactly one value of each rate-limit
// field, all for policy with remaining requests left and a reset ("t")
// between minReset seconds and the window.
func wantFields(t *testing.T, resp *soultest.Response, policy string, limit int, window time.Duration, remaining int, minReset int64) {
	t.Helper()
	h := resp.Header
	secs := int64(window / time.Second)
	for _, name := range rateLimitFields {
		if n := len(h.Values(name)); n != 1 {
			t.Errorf("%s has %d values %q, want 1", name, n, h.Values(name))
		}
	}
	if got, want := h.Get("RateLimit-Policy"), fmt.Sprintf(`"%s";q=%d;w=%d`, policy, limit, secs); got != want {
		t.Errorf("RateLimit-Policy = %q, want %q", got, want)
	}
	m := rateLimitField.FindStringSubmatch(h.Get("RateLimit"))
	if m == nil || m[1] != policy || m[2] != strconv.Itoa(remaining) || int64(mustAtoi(t, m[3])) < minReset || int64(mustAtoi(t, m[3])) > secs {
		t.Errorf(`RateLimit = %q, want "%s";r=%d;t=%d..%d`, h.Get("RateLimit"), policy, remaining, minReset, secs)
	}
	if got := h.Get("X-RateLimit-Limit"); got != strconv.Itoa(limit) {
		t.Errorf("X-RateLimit-Limit = %q, want %d", got, limit)
	}
	if got := h.Get("X-RateLimit-Remaining"); got != strconv.Itoa(remaining) {
		t.Errorf("X-RateLimit-Remaining = %q, want %d", got, remaining)
	}
	now := time.Now().Unix()
	if at, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err != nil || at <= now || at > now+secs+1 {
		t.Errorf("X-RateLimit-Reset = %q, want unix seconds in (%d, %d]", h.Get("X-RateLimit-Reset"), now, now+secs+1)
	}
}

// wantAllowedFields is wantFields for an answer whose checks all admitted
// it: the hit just counted, so the quota of the reported policy is whole
// again a full window from now ("t" is the window).
func wantAllowedFields(t *testing.T, resp *soultest.Response, policy string, limit int, window time.Duration, remaining int) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("%d header: %v", resp.StatusCode, resp.Header)
		}
	}()
	wantFields(t, resp, policy, limit, window, remaining, int64(window/time.Second))
}

var rateLimitFields = []string{"RateLimit-Policy", "RateLimit", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}

// wantNoFields checks that an answer made before any limit check carries
// none of the rate-limit fields.
func wantNoFields(t *testing.T, resp *soultest.Response) {
	t.Helper()
	for _, name := range rateLimitFields {
		if v := resp.Header.Values(name); len(v) > 0 {
			t.Errorf("%d answer of %s carries %s %q, want none", resp.StatusCode, resp.Request.URL.Path, name, v)
		}
	}
}

// Every answer of a sign-in route that made a limit check, success or not,
// carries the fields of the policy closest to refusing among the checks
// the request made: the fewest requests remaining, ties to the longest
// reset. An answer made before any check carries none.
func TestSignInAnswersCarryTightestLimit(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Redis: true})

	t.Run("code request", func(t *testing.T) {
		// otp_request has 4 left, otp_send_day 9, otp_send none: the next
		// code for this phone waits for the cooldown.
		c := newClient(t, s)
		resp := c.post(soulauth.PathOTPRequest, map[string]string{"phone": newPhone()})
		soultest.WantStatus(t, resp, http.StatusOK)
		wantAllowedFields(t, resp, "otp_send", 1, time.Minute, 0)
	})
	t.Run("sign-in", func(t *testing.T) {
		// The spent code's tries are forgotten, so the client's IP has the
		// least room: 9 of its 10 verifies.
		phone := newPhone()
		code := newClient(t, s).requestCode(phone)
		resp := newClient(t, s).post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": code})
		soultest.WantStatus(t, resp, http.StatusOK)
		wantAllowedFields(t, resp, "otp_verify", 10, 5*time.Minute, 9)
	})
	t.Run("wrong code", func(t *testing.T) {
		// Each wrong try spends one of the phone's 5, from whatever IP.
		phone := newPhone()
		code := newClient(t, s).requestCode(phone)
		wrong := fmt.Sprintf("%06d", (mustAtoi(t, code)+1)%1000000)
		for left := 4; left >= 3; left-- {
			resp := newClient(t, s).post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": wrong})
			soultest.WantProblem(t, resp, http.StatusUnauthorized, "invalid_code")
			wantAllowedFields(t, resp, "otp_attempts", 5, 5*time.Minute, left)
		}
	})
	t.Run("no code sent", func(t *testing.T) {
		resp := newClient(t, s).post(soulauth.PathVerifyOTP, map[string]string{"phone": newPhone(), "code": "123456"})
		soultest.WantProblem(t, resp, http.StatusUnauthorized, "code_expired")
		wantAllowedFields(t, resp, "otp_attempts", 5, 5*time.Minute, 4)
	})
	t.Run("refresh", func(t *testing.T) {
		pair := newClient(t, s).signIn(newPhone())
		c := newClient(t, s)
		for left := 9; left >= 8; left-- {
			resp := c.post(soulauth.PathRefresh, map[string]string{"refresh_token": pair.RefreshToken})
			soultest.WantStatus(t, resp, http.StatusOK)
			wantAllowedFields(t, resp, "refresh", 10, time.Minute, left)
			resp.JSON(t, &pair)
		}
		// A refused token is counted as well.
		resp := c.post(soulauth.PathRefresh, map[string]string{"refresh_token": "rt_unknown"})
		soultest.WantProblem(t, resp, http.StatusUnauthorized, "invalid_refresh_token")
		wantAllowedFields(t, resp, "refresh", 10, time.Minute, 7)
	})
	t.Run("logout under the default policy", func(t *testing.T) {
		// No bearer token on a logout: the default policy keys on the IP.
		c := newClient(t, s)
		for left := 99; left >= 98; left-- {
			resp := c.post(soulauth.PathLogout, map[string]string{"refresh_token": "rt_unknown"})
			soultest.WantStatus(t, resp, http.StatusNoContent)
			wantAllowedFields(t, resp, "default", 100, time.Minute, left)
		}
	})
	t.Run("before any check", func(t *testing.T) {
		c := newClient(t, s)
		for _, resp := range []*soultest.Response{
			c.post(soulauth.PathOTPRequest, `{"phone":`),
			c.post(soulauth.PathOTPRequest, map[string]string{"phone": "12"}),
			c.post(soulauth.PathVerifyOTP, map[string]string{"phone": newPhone(), "code": "12"}),
			c.post(soulauth.PathRefresh, map[string]string{}),
		} {
			if resp.StatusCode < 204 || resp.StatusCode >= 500 {
				t.Errorf("%s answered %d, want 204 or a 4xx", resp.Request.URL.Path, resp.StatusCode)
			}
			wantNoFields(t, resp)
		}
	})
}

// Behind a soul_rate_limit policy, a sign-in answer reports soul_auth's
// tightest policy in place of the one in front: one value per field.
func TestSignInFieldsReplacePolicyInFront(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Redis: true, Caddyfile: shieldedCaddyfile(t)})
	c := newClient(t, s)
	// The cooldown is lifted to 100 a minute here, so the client's IP is
	// the closest to refusing, one code request fewer each time.
	for left := 4; left >= 3; left-- {
		resp := c.post(soulauth.PathOTPRequest, map[string]string{"phone": newPhone()})
		soultest.WantStatus(t, resp, http.StatusOK)
		wantAllowedFields(t, resp, "otp_request", 5, 5*time.Minute, left)
	}
	// Before any sign-in check only the policy in front speaks.
	resp := c.post(soulauth.PathOTPRequest, map[string]string{"phone": "12"})
	soultest.WantProblem(t, resp, http.StatusUnprocessableEntity, "invalid_phone")
	if got := resp.Header.Get("RateLimit-Policy"); got != `"signin_ip";q=1000;w=60` {
		t.Errorf("RateLimit-Policy = %q, want the policy in front", got)
	}
}

// Answers of the SMS provider after the limit checks carry the fields too,
// a refusal of its own (not a rate limit of ours) excepted: that keeps only
// Retry-After, so it never says that requests remain.
func TestProviderAnswersCarryLimitFields(t *testing.T) {
	tw := twiliotest.NewServer(t)
	s := soultest.Start(t, soultest.Options{Redis: true, Env: map[string]string{
		"TWILIO_ACCOUNT_SID":        tw.AccountSID,
		"TWILIO_AUTH_TOKEN":         tw.AuthToken,
		"TWILIO_VERIFY_SERVICE_SID": tw.ServiceSID,
		"TWILIO_VERIFY_BASE_URL":    tw.URL,
	}})
	request := func(phone string) *soultest.Response {
		return newClient(t, s).post(soulauth.PathOTPRequest, map[string]string{"phone": phone})
	}
	verify := func(phone string) *soultest.Response {
		return newClient(t, s).post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": twiliotest.DefaultCode})
	}

	t.Run("invalid phone", func(t *testing.T) {
		// The send was counted before Twilio refused the number.
		phone := newPhone()
		tw.Script(phone, twiliotest.Phone{Start: &twiliotest.InvalidParameter})
		resp := request(phone)
		soultest.WantProblem(t, resp, http.StatusUnprocessableEntity, "invalid_phone")
		wantAllowedFields(t, resp, "otp_send", 1, time.Minute, 0)
	})
	t.Run("provider down", func(t *testing.T) {
		phone := newPhone()
		tw.Script(phone, twiliotest.Phone{Start: &twiliotest.InternalError, Check: &twiliotest.InternalError})
		resp := request(phone)
		soultest.WantProblem(t, resp, http.StatusBadGateway, "sms_provider_unavailable")
		wantAllowedFields(t, resp, "otp_send", 1, time.Minute, 0)
		resp = verify(phone)
		soultest.WantProblem(t, resp, http.StatusBadGateway, "sms_provider_unavailable")
		wantAllowedFields(t, resp, "otp_attempts", 5, 5*time.Minute, 4)
	})
	t.Run("provider's own attempt limit", func(t *testing.T) {
		phone := newPhone()
		tw.Script(phone, twiliotest.Phone{Check: &twiliotest.MaxChecksReached})
		soultest.WantStatus(t, request(phone), http.StatusOK)
		resp := verify(phone)
		soultest.WantProblem(t, resp, http.StatusTooManyRequests, "too_many_attempts")
		if resp.Header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
		wantNoFields(t, resp)
	})
}
