package soulauth_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/uptrace/bun"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/soultest"
)

// phoneSeq hands each test its own valid UK mobile number, so per-phone
// limits of one test never meet another's.
var phoneSeq atomic.Int32

func newPhone() string {
	return fmt.Sprintf("+4474001%05d", phoneSeq.Add(1))
}

// ipSeq does the same for client IPs: the test server trusts loopback as a
// proxy, so X-Forwarded-For picks the client IP that per-IP limits key on.
var ipSeq atomic.Int32

func newIP() string {
	n := ipSeq.Add(1)
	return fmt.Sprintf("203.0.%d.%d", n/250, n%250+1)
}

type client struct {
	t  *testing.T
	s  *soultest.Server
	ip string
}

func newClient(t *testing.T, s *soultest.Server) *client {
	return &client{t: t, s: s, ip: newIP()}
}

func (c *client) do(method, path string, body any, headers ...string) *soultest.Response {
	c.t.Helper()
	return c.s.Do(method, path, body, append([]string{"X-Forwarded-For", c.ip}, headers...)...)
}

func (c *client) post(path string, body any) *soultest.Response {
	c.t.Helper()
	return c.do(http.MethodPost, path, body)
}

func (c *client) withToken(method, path, access string) *soultest.Response {
	c.t.Helper()
	return c.do(method, path, nil, "Authorization", "Bearer "+access)
}

// signIn requests a code (local provider: read from preview_code) and
// verifies it.
func (c *client) signIn(phone string) soulauth.TokenPair {
	c.t.Helper()
	code := c.requestCode(phone)
	resp := c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": code})
	soultest.WantStatus(c.t, resp, http.StatusOK)
	var pair soulauth.TokenPair
	resp.JSON(c.t, &pair)
	return pair
}

func (c *client) requestCode(phone string) string {
	c.t.Helper()
	resp := c.post(soulauth.PathOTPRequest, map[string]string{"phone": phone})
	soultest.WantStatus(c.t, resp, http.StatusOK)
	var sent soulauth.OTPSent
	resp.JSON(c.t, &sent)
	return sent.PreviewCode
}

func exec(t testing.TB, db *bun.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", strings.Fields(query)[0], err)
	}
}

// forEachDatabase runs fn once on SQLite and once on Postgres. Caddy keeps
// one config per process, so never in parallel.
func forEachDatabase(t *testing.T, o soultest.Options, fn func(t *testing.T, s *soultest.Server)) {
	for _, db := range soultest.Databases {
		t.Run(string(db), func(t *testing.T) {
			o := o
			o.Database = db
			fn(t, soultest.Start(t, o))
		})
	}
}

// relaxedCaddyfile is the repository's Caddyfile with the per-phone send
// limits lifted, for tests that need several codes for one phone.
func relaxedCaddyfile(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(soultest.RepoRoot(), "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "refresh_token_expire_days {$REFRESH_TOKEN_EXPIRE_DAYS}"
	if !strings.Contains(string(b), anchor) {
		t.Fatalf("Caddyfile has no %q", anchor)
	}
	return strings.Replace(string(b), anchor, anchor+"\n\t\t\t\tlimit otp_send 100 1m\n\t\t\t\tlimit otp_send_day 100 24h", 1)
}
