package soulratelimit_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/internal/token"
	"github.com/soulapp/soul/soultest"
)

// start runs the production Caddyfile on Redis with a small default policy.
func start(t *testing.T, limit int, env map[string]string) (*soultest.Server, string) {
	t.Helper()
	secret := soultest.RandomHex(32)
	e := map[string]string{
		"SECRET_KEY":                secret,
		"RATE_LIMIT_DEFAULT_LIMIT":  strconv.Itoa(limit),
		"RATE_LIMIT_DEFAULT_WINDOW": "1m",
	}
	for k, v := range env {
		e[k] = v
	}
	return soultest.Start(t, soultest.Options{Database: soultest.SQLite, Redis: true, Env: e}), secret
}

func accessToken(t *testing.T, secret string, userID uuid.UUID) string {
	t.Helper()
	iss, err := token.NewIssuer(token.Options{Key: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := iss.IssueSession(userID.String(), uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var rateLimitField = regexp.MustCompile(`^"default";r=(\d+);t=(\d+)$`)

// checkHeaders asserts the five fields of the default policy.
func checkHeaders(t *testing.T, resp *soultest.Response, limit, remaining int, window time.Duration) {
	t.Helper()
	h := resp.Header
	if got, want := h.Get("RateLimit-Policy"), `"default";q=`+strconv.Itoa(limit)+`;w=`+strconv.Itoa(int(window/time.Second)); got != want {
		t.Errorf("RateLimit-Policy = %q, want %q", got, want)
	}
	m := rateLimitField.FindStringSubmatch(h.Get("RateLimit"))
	if m == nil {
		t.Fatalf("RateLimit = %q, want \"default\";r=<n>;t=<s>", h.Get("RateLimit"))
	}
	if r, _ := strconv.Atoi(m[1]); r != remaining {
		t.Errorf("RateLimit r = %d, want %d", r, remaining)
	}
	reset, _ := strconv.Atoi(m[2])
	if reset < 1 || reset > int(window/time.Second) {
		t.Errorf("RateLimit t = %d, want 1..%d", reset, int(window/time.Second))
	}
	if got := h.Get("X-RateLimit-Limit"); got != strconv.Itoa(limit) {
		t.Errorf("X-RateLimit-Limit = %q, want %d", got, limit)
	}
	if got := h.Get("X-RateLimit-Remaining"); got != strconv.Itoa(remaining) {
		t.Errorf("X-RateLimit-Remaining = %q, want %d", got, remaining)
	}
	at, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	now := time.Now().Unix()
	if err != nil || at < now || at > now+int64(window/time.Second)+1 {
		t.Errorf("X-RateLimit-Reset = %q, want unix seconds within the window from now (%d)", h.Get("X-RateLimit-Reset"), now)
	}
}

// edgeHeaders asserts the headers every /api answer carries, refusals
// included: the security snippet's, no-store and no Server.
func edgeHeaders(t *testing.T, resp *soultest.Response) {
	t.Helper()
	want := map[string]string{
		"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
		"X-Content-Type-Options":    "nosniff",
		"X-Frame-Options":           "DENY",
		"Referrer-Policy":           "no-referrer",
		"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
		"Cache-Control":             "no-store",
	}
	for h, v := range want {
		if got := resp.Header.Values(h); len(got) != 1 || got[0] != v {
			t.Errorf("%d answer: %s = %q, want %q", resp.StatusCode, h, got, v)
		}
	}
	if s, ok := resp.Header["Server"]; ok {
		t.Errorf("%d answer: Server = %q", resp.StatusCode, s)
	}
}

func TestHeadersAndRefusal(t *testing.T) {
	const limit = 3
	s, _ := start(t, limit, nil)

	for i := 1; i <= limit; i++ {
		resp := s.Do(http.MethodGet, "/api/nope", nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("request %d: status %d, want the route's own 404 (%s)", i, resp.StatusCode, resp.Body)
		}
		checkHeaders(t, resp, limit, limit-i, time.Minute)
	}

	resp := s.Do(http.MethodGet, "/api/nope", nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("request over the limit: status %d (%s)", resp.StatusCode, resp.Body)
	}
	if p := resp.Problem(t); p.Code != "rate_limited" {
		t.Errorf("code = %q, want rate_limited", p.Code)
	}
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 60 {
		t.Errorf("Retry-After = %q, want 1..60 seconds", resp.Header.Get("Retry-After"))
	}
	checkHeaders(t, resp, limit, 0, time.Minute)
	edgeHeaders(t, resp)

	// Unlimited routes: health, the API document, sign-in (its own limits).
	for _, path := range []string{"/healthz", "/api/docs", "/api/openapi.json", "/api/auth/refresh"} {
		for i := 0; i < limit+2; i++ {
			resp := s.Do(http.MethodGet, path, nil)
			if resp.StatusCode == http.StatusTooManyRequests {
				t.Fatalf("%s answered 429 (%s)", path, resp.Body)
			}
			if strings.Contains(resp.Header.Get("RateLimit-Policy"), `"default"`) {
				t.Fatalf("%s is under the default policy: %v", path, resp.Header)
			}
		}
	}
}

// A signed-in user is counted on its own budget; a token that does not
// verify cannot pick anyone's budget and is counted on the client IP.
func TestKeyedByUser(t *testing.T) {
	const limit = 2
	s, secret := start(t, limit, nil)
	alice, bob := uuid.New(), uuid.New()
	aliceToken := "Bearer " + accessToken(t, secret, alice)

	for i := 0; i < limit; i++ {
		if resp := s.Do(http.MethodGet, "/api/nope", nil, "Authorization", aliceToken); resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("alice's request %d refused", i+1)
		}
	}
	if resp := s.Do(http.MethodGet, "/api/nope", nil, "Authorization", aliceToken); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("alice over her limit: status %d", resp.StatusCode)
	}

	cases := []struct {
		name, authorization string
	}{
		{"another user", "Bearer " + accessToken(t, secret, bob)},
		{"a token for alice signed with another key", "Bearer " + accessToken(t, soultest.RandomHex(32), alice)},
		{"no token", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.Do(http.MethodGet, "/api/nope", nil, "Authorization", tc.authorization)
			if resp.StatusCode == http.StatusTooManyRequests {
				t.Fatalf("refused: counted on alice's budget")
			}
		})
	}
	// The forged token and the bare request share the client IP's budget.
	if resp := s.Do(http.MethodGet, "/api/nope", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third request from one IP: status %d, want 429", resp.StatusCode)
	}
}

// X-Forwarded-For picks the key only when the peer is a trusted proxy.
func TestForwardedFor(t *testing.T) {
	cases := []struct {
		name    string
		trusted string
		// whether a second forwarded address gets a budget of its own
		ownBudget bool
	}{
		{"peer trusted", "127.0.0.1/32", true},
		{"peer not trusted", "10.0.0.0/8", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const limit = 2
			s, _ := start(t, limit, map[string]string{"TRUSTED_PROXIES": tc.trusted})
			for i := 0; i < limit; i++ {
				if resp := s.Do(http.MethodGet, "/api/nope", nil, "X-Forwarded-For", "203.0.113.1"); resp.StatusCode == http.StatusTooManyRequests {
					t.Fatalf("request %d refused", i+1)
				}
			}
			resp := s.Do(http.MethodGet, "/api/nope", nil, "X-Forwarded-For", "203.0.113.2")
			if got := resp.StatusCode != http.StatusTooManyRequests; got != tc.ownBudget {
				t.Fatalf("another X-Forwarded-For: status %d; own budget = %v, want %v", resp.StatusCode, got, tc.ownBudget)
			}
		})
	}
}

// The in-memory shield refuses floods before the policy is consulted, and
// never touches /healthz.
func TestShield(t *testing.T) {
	const events = 4
	s, _ := start(t, 100, map[string]string{"RATE_LIMIT_SHIELD_EVENTS": strconv.Itoa(events), "RATE_LIMIT_SHIELD_WINDOW": "1m"})
	for i := 0; i < events; i++ {
		if resp := s.Do(http.MethodGet, "/api/nope", nil); resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("request %d refused", i+1)
		}
	}
	resp := s.Do(http.MethodGet, "/api/nope", nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("request over the shield: status %d", resp.StatusCode)
	}
	if p := resp.Problem(t); p.Code != "rate_limited" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("shield refusal: code %q, Retry-After %q", p.Code, resp.Header.Get("Retry-After"))
	}
	if resp.Header.Get("RateLimit-Policy") != "" {
		t.Errorf("the shield's refusal reached the policy: %v", resp.Header)
	}
	// The shield refuses before `handle /api/*` runs, so its answer gets
	// the /api headers only if the site sets them itself.
	edgeHeaders(t, resp)
	for i := 0; i < 3; i++ {
		if resp := s.Do(http.MethodGet, "/healthz", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz: status %d", resp.StatusCode)
		}
	}
}

// The startup log names the storage in use, not merely the one configured:
// a Redis that does not answer at start is reported as memory standing in.
func TestStartupLogNamesStorage(t *testing.T) {
	redisURL := testservices.RedisURL(t)
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	// Port 1 (tcpmux) is never served here; a port that was free a moment
	// ago could be taken by a server of a test running alongside.
	dead := "127.0.0.1:1"
	cases := []struct {
		name, redisURL, want string
	}{
		{"redis answers", redisURL, `"storage":"redis ` + u.Host + `"`},
		{"redis unreachable", "redis://" + dead + "/0", `"storage":"memory (redis ` + dead + ` unreachable, falling back)"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(soultest.RepoRoot(), "Caddyfile"))
			if err != nil {
				t.Fatal(err)
			}
			cfg, readLogs := soultest.CaptureLogs(t, string(b))
			soultest.Start(t, soultest.Options{Database: soultest.SQLite, RedisURL: tc.redisURL, Caddyfile: cfg})
			var lines int
			for _, line := range strings.Split(string(readLogs()), "\n") {
				if !strings.Contains(line, "rate limit policy ready") {
					continue
				}
				lines++
				if !strings.Contains(line, tc.want) {
					t.Errorf("policy log line lacks %s: %s", tc.want, line)
				}
			}
			if lines == 0 {
				t.Fatalf("no \"rate limit policy ready\" line:\n%s", readLogs())
			}
		})
	}
}
