package badinput_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/soultest"
)

// Limits out of the way: these tests count answers, not requests.
var testEnv = map[string]string{
	"RATE_LIMIT_DEFAULT_LIMIT": "1000000",
	"RATE_LIMIT_SHIELD_EVENTS": "1000000",
}

// signIn creates an account with the local code provider's preview code
// and returns its access token.
func signIn(t *testing.T, s *soultest.Server) string {
	t.Helper()
	const phone = "+447400200001"
	resp := s.Do(http.MethodPost, soulauth.PathOTPRequest, map[string]string{"phone": phone})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("code request: %d %s", resp.StatusCode, resp.Body)
	}
	var sent soulauth.OTPSent
	resp.JSON(t, &sent)
	resp = s.Do(http.MethodPost, soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": sent.PreviewCode})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("verify: %d %s", resp.StatusCode, resp.Body)
	}
	var pair soulauth.TokenPair
	resp.JSON(t, &pair)
	return pair.AccessToken
}

// alive fails the test unless the server still answers /healthz.
func alive(t *testing.T, s *soultest.Server) {
	t.Helper()
	if resp := s.Do(http.MethodGet, "/healthz", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz after bad input: %d %s", resp.StatusCode, resp.Body)
	}
}

// Malformed JSON bodies on every JSON endpoint, the update of a mood
// included: each is a 4xx problem.
func TestMalformedJSON(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Env: testEnv})
	token := signIn(t, s)
	created := s.Do(http.MethodPost, "/api/moods", `{"score":5}`, "Authorization", "Bearer "+token)
	if created.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/moods: %d %s", created.StatusCode, created.Body)
	}
	var m struct {
		ID string `json:"id"`
	}
	created.JSON(t, &m)

	nested := func(open, close string, n int) string {
		return strings.Repeat(open, n) + strings.Repeat(close, n)
	}
	// replaced: a lone surrogate escape is valid UTF-8 on the wire and
	// encoding/json decodes it to U+FFFD, so such a body may be accepted;
	// what must not happen is invalid text reaching the database or the
	// answer. Invalid UTF-8 bytes themselves are refused.
	//
	// deep: sent past the OpenAPI checker of s.Client, whose validator
	// spells out a 10k-deep value in its own error in quadratic time
	// (10-15 s a request under -race); the answer is still held to a 4xx
	// problem below.
	bodies := []struct {
		name, body     string
		replaced, deep bool
	}{
		{"invalid UTF-8 in a string", "{\"score\":3,\"label\":\"ok\xff\xfe\",\"note\":\"\xc3\x28\"}", false, false},
		{"invalid UTF-8 in a key", "{\"sc\xffore\":3}", false, false},
		{"lone surrogate escape", `{"score":3,"note":"\ud800"}`, true, false},
		{"huge exponent", `{"score":1e400}`, false, false},
		{"negative huge exponent", `{"score":-1e400}`, false, false},
		{"100-digit integer", `{"score":` + strings.Repeat("9", 100) + `}`, false, false},
		{"fractional score", `{"score":3.5}`, false, false},
		{"10k nested arrays", `{"score":3,"tags":` + nested("[", "]", 10000) + `}`, false, true},
		{"10k nested objects", nested(`{"a":`, `}`, 10000), false, true},
		{"10k nested arrays at the top", nested("[", "]", 10000), false, true},
		{"NUL in a string", `{"score":3,"note":"a\u0000b"}`, false, false},
	}
	plain := &http.Client{Timeout: 15 * time.Second}
	unchecked := func(t *testing.T, method, path, body string, headers ...string) *soultest.Response {
		t.Helper()
		req, err := http.NewRequest(method, s.BaseURL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: reading body: %v", method, path, err)
		}
		return &soultest.Response{Response: resp, Body: data}
	}
	endpoints := []struct {
		method, path string
		auth         bool
	}{
		{http.MethodPost, "/api/moods", true},
		{http.MethodPatch, "/api/moods/" + m.ID, true},
		{http.MethodPost, soulauth.PathOTPRequest, false},
		{http.MethodPost, soulauth.PathVerifyOTP, false},
		{http.MethodPost, soulauth.PathRefresh, false},
		{http.MethodPost, soulauth.PathLogout, true},
	}
	for _, e := range endpoints {
		for _, b := range bodies {
			t.Run(e.method+" "+e.path+"/"+b.name, func(t *testing.T) {
				var headers []string
				if e.auth {
					headers = []string{"Authorization", "Bearer " + token}
				}
				var resp *soultest.Response
				if b.deep {
					resp = unchecked(t, e.method, e.path, b.body, headers...)
				} else {
					resp = s.Do(e.method, e.path, b.body, headers...)
				}
				if b.replaced && resp.StatusCode < 300 {
					if !utf8.Valid(resp.Body) || !strings.Contains(string(resp.Body), "\ufffd") {
						t.Fatalf("%s %s with %s: accepted without replacing the invalid text: %q", e.method, e.path, b.name, resp.Body)
					}
					t.Logf("%s %s with %s: %d, invalid text stored as U+FFFD", e.method, e.path, b.name, resp.StatusCode)
					return
				}
				if resp.StatusCode < 400 || resp.StatusCode >= 500 {
					t.Fatalf("%s %s with %s: status %d, want 4xx; body %s", e.method, e.path, b.name, resp.StatusCode, resp.Body)
				}
				resp.Problem(t)
			})
		}
	}
	alive(t, s)
}

// A header block over Caddy's limit is refused with 431 before any handler.
func TestOversizedHeaders(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Env: testEnv,
		// Go's HTTP server refuses these before any handler runs, with a
		// plain-text 431 that no Caddy route can turn into a problem.
		Unchecked: "the 431 comes from Go's HTTP server, not the API"})
	for _, size := range []int{64 << 10, 1 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			resp := s.Do(http.MethodGet, "/api/moods", nil, "X-Padding", strings.Repeat("a", size))
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("%d-byte header: status %d, want 431", size, resp.StatusCode)
			}
		})
	}
	// Many small headers add up the same way.
	req, err := http.NewRequest(http.MethodGet, s.BaseURL+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4000; i++ {
		req.Header.Add(fmt.Sprintf("X-H-%d", i), "0123456789")
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("4000 headers: status %d, want 431", resp.StatusCode)
	}
	alive(t, s)
}

// A body that trickles in slower than the read_body timeout is cut off
// with a 4xx problem, never a handler stuck on it. read_body is Go's
// http.Server ReadTimeout: it becomes the connection's read deadline, so
// the handler's read of the body fails when it passes; the JSON decoder
// answers that 400 invalid_json ("could not be read"), which the server can
// still write (the write timeout is separate), and Go's server half-closes
// and lingers before closing so that the client reads the answer rather
// than a reset. A connection closed without an answer therefore fails the
// test. The production Caddyfile's 10s is shortened to 1s to keep the
// test quick.
func TestSlowDripBody(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(soultest.RepoRoot(), "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	const from = "read_body 10s"
	if !strings.Contains(string(b), from) {
		t.Fatalf("Caddyfile has no %q", from)
	}
	cfg := strings.Replace(string(b), from, "read_body 1s", 1)
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Env: testEnv, Caddyfile: cfg})
	token := signIn(t, s)

	u, err := url.Parse(s.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/moods", soulauth.PathOTPRequest} {
		t.Run(path, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			body := `{"score":3,"note":"` + strings.Repeat("x", 200) + `"}`
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
				path, u.Host, token, len(body))
			// One byte every 100ms: the whole body would take 20s. The
			// loop stops at the first failed write (the server closed)
			// and in any case after 5s.
			done := make(chan struct{})
			go func() {
				defer close(done)
				deadline := time.Now().Add(5 * time.Second)
				for i := 0; i < len(body) && time.Now().Before(deadline); i++ {
					if _, err := conn.Write([]byte{body[i]}); err != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
			defer func() { _ = conn.Close(); <-done }()
			// 15s: well past the 1s timeout, well short of the 20s body;
			// only a server that waits for the whole body reaches it.
			_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
			sent, _ := http.NewRequest(http.MethodPost, s.BaseURL+path, nil)
			resp, err := http.ReadResponse(bufio.NewReader(conn), sent)
			if err != nil {
				t.Fatalf("slow body on %s: no answer (%v)", path, err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("slow body on %s: reading the answer: %v", path, err)
			}
			t.Logf("slow body on %s: status %d %s", path, resp.StatusCode, got)
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Fatalf("slow body on %s: status %d, want 4xx", path, resp.StatusCode)
			}
			(&soultest.Response{Response: resp, Body: got}).Problem(t)
		})
	}
	alive(t, s)
}
