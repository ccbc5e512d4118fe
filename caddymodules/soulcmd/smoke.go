package soulcmd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// SmokeOptions say what `caddy soul smoke` checks and where.
type SmokeOptions struct {
	// BaseURL is the deployment under test, e.g. https://api-staging.soulapp.app.
	BaseURL string
	// Origin, when set, is a browser origin CORS_ORIGINS allows: a
	// preflight from it must pass.
	Origin string
	// Phone, when set, signs in with it (an OTP_TEST_NUMBERS number on
	// production), reads /api/me and /api/moods, and logs out.
	Phone string
	// Code is Phone's one-time code; empty takes the preview_code a
	// DEV_MODE deployment returns.
	Code string
	// Timeout bounds each request.
	Timeout time.Duration
	// Client sends the requests; nil uses one with Timeout.
	Client *http.Client
}

// smokeHeaders are the security headers every answer must carry, with the
// value each must hold ("" only asks for presence).
var smokeHeaders = []struct{ name, want string }{
	{"Strict-Transport-Security", ""},
	{"X-Content-Type-Options", "nosniff"},
	{"X-Frame-Options", "DENY"},
	{"Referrer-Policy", "no-referrer"},
	{"Content-Security-Policy", ""},
}

func smokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "smoke --base-url URL [--origin ORIGIN] [--phone +1555... [--code CODE]]",
		Short: "Check a running deployment end to end; exit non-zero naming each failed check",
		Long: `
Checks a deployment from the outside, one line per check:

  healthz            GET /healthz answers 200 with status ok or degraded
  security_headers   HSTS, nosniff, frame DENY, no-referrer, a CSP, no Server header
  not_found          an unknown route is a 404 application/problem+json
  cors_preflight     (--origin) an OPTIONS preflight from ORIGIN is allowed
  otp_request        (--phone) POST /api/auth/otp/request answers 200
  verify_otp         (--phone) POST /api/auth/verify-otp with --code (or the
                     DEV_MODE preview_code) answers tokens
  me                 (--phone) GET /api/me with the access token is that user
  moods              (--phone) GET /api/moods answers a JSON array
  logout             (--phone) POST /api/auth/logout answers 204, and the
                     refresh token is refused afterwards

On production use a number from OTP_TEST_NUMBERS with its fixed code: the
sign-in creates (or reuses) that number's account and sends no SMS.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o SmokeOptions
			o.BaseURL, _ = cmd.Flags().GetString("base-url")
			o.Origin, _ = cmd.Flags().GetString("origin")
			o.Phone, _ = cmd.Flags().GetString("phone")
			o.Code, _ = cmd.Flags().GetString("code")
			o.Timeout, _ = cmd.Flags().GetDuration("timeout")
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return Smoke(ctx, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().String("base-url", "", "the deployment's URL, e.g. https://api-staging.soulapp.app (required)")
	cmd.Flags().String("origin", "", "a browser origin in CORS_ORIGINS: check its preflight")
	cmd.Flags().String("phone", "", "sign in with this number (OTP_TEST_NUMBERS on production)")
	cmd.Flags().String("code", "", "the phone's one-time code (default: the DEV_MODE preview_code)")
	cmd.Flags().Duration("timeout", 10*time.Second, "give up on a request after this long")
	return cmd
}

// Smoke runs the checks against o.BaseURL, writing one line per check to
// out. It returns an error naming the failed checks, if any.
func Smoke(ctx context.Context, o SmokeOptions, out io.Writer) error {
	base, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("smoke: --base-url must be an http(s) URL, got %q", o.BaseURL)
	}
	if o.Code != "" && o.Phone == "" {
		return errors.New("smoke: --code needs --phone")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: o.Timeout}
	}
	s := &smoke{ctx: ctx, base: base.String(), client: client, out: out}

	s.check("healthz", s.healthz)
	s.check("security_headers", s.securityHeaders)
	s.check("not_found", s.notFound)
	if o.Origin != "" {
		s.check("cors_preflight", func() error { return s.preflight(o.Origin) })
	}
	if o.Phone != "" {
		s.signIn(o.Phone, o.Code)
	}

	if len(s.failed) > 0 {
		fmt.Fprintf(out, "FAILED %d of %d checks against %s\n", len(s.failed), s.ran, s.base)
		return fmt.Errorf("smoke: failed: %s", strings.Join(s.failed, ", "))
	}
	fmt.Fprintf(out, "PASSED all %d checks against %s\n", s.ran, s.base)
	return nil
}

type smoke struct {
	ctx    context.Context
	base   string
	client *http.Client
	out    io.Writer
	ran    int
	failed []string
	// healthAnswer is /healthz's answer, kept for the header check.
	healthAnswer *smokeAnswer
}

// check runs one named check and prints its line.
func (s *smoke) check(name string, run func() error) bool {
	s.ran++
	if err := run(); err != nil {
		s.failed = append(s.failed, name)
		fmt.Fprintf(s.out, "FAIL %s: %v\n", name, err)
		return false
	}
	fmt.Fprintf(s.out, "ok   %s\n", name)
	return true
}

// skip records a check that could not run because an earlier one failed.
func (s *smoke) skip(name, because string) {
	s.ran++
	s.failed = append(s.failed, name)
	fmt.Fprintf(s.out, "FAIL %s: not run: %s failed\n", name, because)
}

type smokeAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (s *smoke) do(method, path string, body any, header ...string) (*smokeAnswer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(s.ctx, method, s.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "soul-smoke")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return &smokeAnswer{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// unexpected describes an answer with the wrong status, with the start of
// its body (a problem's detail says what went wrong).
func unexpected(a *smokeAnswer, want string) error {
	body := strings.TrimSpace(string(a.body))
	if len(body) > 200 {
		body = body[:200] + "..."
	}
	msg := fmt.Sprintf("status %d, want %s", a.status, want)
	if ra := a.header.Get("Retry-After"); ra != "" {
		msg += " (Retry-After " + ra + "s)"
	}
	if body != "" {
		msg += ": " + body
	}
	return errors.New(msg)
}

func (s *smoke) healthz() error {
	a, err := s.do(http.MethodGet, "/healthz", nil)
	if err != nil {
		return err
	}
	s.healthAnswer = a
	if a.status != http.StatusOK {
		return unexpected(a, "200")
	}
	var h struct {
		Status  string `json:"status"`
		DB      bool   `json:"db"`
		Redis   bool   `json:"redis"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(a.body, &h); err != nil {
		return fmt.Errorf("body is not the health JSON: %v", err)
	}
	if h.Status != "ok" && h.Status != "degraded" {
		return fmt.Errorf("status %q, want ok or degraded", h.Status)
	}
	if !h.DB {
		return errors.New(`"db" is false`)
	}
	fmt.Fprintf(s.out, "     status=%s db=%t redis=%t version=%s\n", h.Status, h.DB, h.Redis, h.Version)
	return nil
}

// missingHeaders lists the security headers an answer lacks or gets wrong.
func missingHeaders(h http.Header) []string {
	var bad []string
	for _, sh := range smokeHeaders {
		got := h.Get(sh.name)
		switch {
		case got == "":
			bad = append(bad, sh.name+" missing")
		case sh.want != "" && !strings.EqualFold(got, sh.want):
			bad = append(bad, fmt.Sprintf("%s is %q, want %q", sh.name, got, sh.want))
		}
	}
	if v := h.Get("Server"); v != "" {
		bad = append(bad, fmt.Sprintf("Server header %q present", v))
	}
	return bad
}

func (s *smoke) securityHeaders() error {
	a := s.healthAnswer
	if a == nil {
		var err error
		if a, err = s.do(http.MethodGet, "/healthz", nil); err != nil {
			return err
		}
	}
	if bad := missingHeaders(a.header); len(bad) > 0 {
		return fmt.Errorf("on /healthz: %s", strings.Join(bad, "; "))
	}
	return nil
}

func (s *smoke) notFound() error {
	var b [6]byte
	_, _ = rand.Read(b[:])
	path := "/api/smoke-" + hex.EncodeToString(b[:])
	a, err := s.do(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if a.status != http.StatusNotFound {
		return unexpected(a, "404")
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		return fmt.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Status int    `json:"status"`
		Title  string `json:"title"`
		Code   string `json:"code"`
	}
	if err := json.Unmarshal(a.body, &p); err != nil {
		return fmt.Errorf("body is not a problem: %v", err)
	}
	if p.Status != http.StatusNotFound || p.Code == "" || p.Title != http.StatusText(http.StatusNotFound) {
		return fmt.Errorf("malformed problem: %s", a.body)
	}
	if bad := missingHeaders(a.header); len(bad) > 0 {
		return fmt.Errorf("on a 404: %s", strings.Join(bad, "; "))
	}
	return nil
}

func (s *smoke) preflight(origin string) error {
	a, err := s.do(http.MethodOptions, "/api/moods", nil,
		"Origin", origin,
		"Access-Control-Request-Method", http.MethodPost,
		"Access-Control-Request-Headers", "authorization, content-type")
	if err != nil {
		return err
	}
	if a.status < 200 || a.status > 299 {
		return unexpected(a, "2xx (is the origin in CORS_ORIGINS?)")
	}
	if got := a.header.Get("Access-Control-Allow-Origin"); got != origin && got != "*" {
		return fmt.Errorf("Access-Control-Allow-Origin %q, want %q", got, origin)
	}
	if m := a.header.Get("Access-Control-Allow-Methods"); !strings.Contains(strings.ToUpper(m), http.MethodPost) {
		return fmt.Errorf("Access-Control-Allow-Methods %q lacks POST", m)
	}
	return nil
}

type smokeTokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	User         struct {
		ID    string `json:"id"`
		Phone string `json:"phone"`
	} `json:"user"`
}

// signIn runs the sign-in round: request a code, verify it, read /api/me
// and /api/moods, log out.
func (s *smoke) signIn(phone, code string) {
	var preview string
	ok := s.check("otp_request", func() error {
		a, err := s.do(http.MethodPost, "/api/auth/otp/request", map[string]string{"phone": phone})
		if err != nil {
			return err
		}
		if a.status != http.StatusOK {
			return unexpected(a, "200")
		}
		var r struct {
			Status      string `json:"status"`
			PreviewCode string `json:"preview_code"`
		}
		if err := json.Unmarshal(a.body, &r); err != nil || r.Status != "ok" {
			return fmt.Errorf("answer is not {\"status\":\"ok\"}: %s", a.body)
		}
		preview = r.PreviewCode
		return nil
	})
	if !ok {
		for _, name := range []string{"verify_otp", "me", "moods", "logout"} {
			s.skip(name, "otp_request")
		}
		return
	}

	var tok smokeTokens
	ok = s.check("verify_otp", func() error {
		c := code
		if c == "" {
			c = preview
		}
		if c == "" {
			return errors.New("no --code given and the deployment returned no preview_code (DEV_MODE=false, or a number of OTP_TEST_NUMBERS: pass its --code)")
		}
		a, err := s.do(http.MethodPost, "/api/auth/verify-otp", map[string]string{"phone": phone, "code": c})
		if err != nil {
			return err
		}
		if a.status != http.StatusOK {
			return unexpected(a, "200")
		}
		if err := json.Unmarshal(a.body, &tok); err != nil || tok.AccessToken == "" || tok.RefreshToken == "" {
			return errors.New("answer holds no access_token and refresh_token")
		}
		return nil
	})
	if !ok {
		for _, name := range []string{"me", "moods", "logout"} {
			s.skip(name, "verify_otp")
		}
		return
	}
	bearer := "Bearer " + tok.AccessToken

	s.check("me", func() error {
		a, err := s.do(http.MethodGet, "/api/me", nil, "Authorization", bearer)
		if err != nil {
			return err
		}
		if a.status != http.StatusOK {
			return unexpected(a, "200")
		}
		var u struct {
			ID    string `json:"id"`
			Phone string `json:"phone"`
		}
		if err := json.Unmarshal(a.body, &u); err != nil {
			return fmt.Errorf("body is not a user: %v", err)
		}
		if u.ID == "" || u.ID != tok.User.ID {
			return fmt.Errorf("user %q, want the signed-in %q", u.ID, tok.User.ID)
		}
		return nil
	})

	s.check("moods", func() error {
		a, err := s.do(http.MethodGet, "/api/moods?limit=1", nil, "Authorization", bearer)
		if err != nil {
			return err
		}
		if a.status != http.StatusOK {
			return unexpected(a, "200")
		}
		var list []json.RawMessage
		if err := json.Unmarshal(a.body, &list); err != nil {
			return fmt.Errorf("body is not a JSON array: %v", err)
		}
		return nil
	})

	s.check("logout", func() error {
		body := map[string]string{"refresh_token": tok.RefreshToken}
		a, err := s.do(http.MethodPost, "/api/auth/logout", body, "Authorization", bearer)
		if err != nil {
			return err
		}
		if a.status != http.StatusNoContent {
			return unexpected(a, "204")
		}
		a, err = s.do(http.MethodPost, "/api/auth/refresh", body)
		if err != nil {
			return err
		}
		if a.status != http.StatusUnauthorized {
			return fmt.Errorf("refresh after logout: %w", unexpected(a, "401"))
		}
		return nil
	})
}
