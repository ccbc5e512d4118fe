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
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// Defaults of `caddy soul smoke`.
const (
	// DefaultRefusedOrigin is an origin no deployment allows: the .invalid
	// top-level domain never resolves (RFC 2606).
	DefaultRefusedOrigin = "https://smoke-refused.invalid"
	// burstRequests bounds the OTP burst. With the default limits the
	// second request is refused (one code a minute per phone), and the
	// sixth at the latest (5 per 5 minutes per IP).
	burstRequests = 10
)

// SmokeOptions say what `caddy soul smoke` checks and where.
type SmokeOptions struct {
	// BaseURL is the deployment under test, e.g. https://api-staging.soulapp.app.
	BaseURL string
	// Origin, when set, is a browser origin CORS_ORIGINS allows: a
	// preflight from it must pass.
	Origin string
	// RefusedOrigin is an origin CORS_ORIGINS does not allow: a preflight
	// from it must be refused. Empty means DefaultRefusedOrigin.
	RefusedOrigin string
	// Phone, when set, signs in with it (an OTP_TEST_NUMBERS number on
	// production), reads /api/me and /api/moods, and logs out.
	Phone string
	// Code is Phone's one-time code; empty takes the preview_code a
	// DEV_MODE deployment returns.
	Code string
	// BurstPhone is the number the OTP burst asks codes for until a 429
	// comes back; empty means DefaultBurstPhone. It must not be Phone, so
	// the burst never spends the sign-in's limits.
	BurstPhone string
	// SkipBurst leaves the OTP burst out.
	SkipBurst bool
	// AllowDegraded accepts a /healthz that says "degraded" (Redis
	// configured but not answering).
	AllowDegraded bool
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
		Use:   "smoke --base-url URL [--origin ORIGIN] [--phone +1555... [--code CODE]] [--skip-burst]",
		Short: "Check a running deployment end to end; exit non-zero naming each failed check",
		Long: `
Checks a deployment from the outside, one line per check (ok, FAIL or skip):

  healthz            GET /healthz answers 200, db true, and status ok (with
                     redis true, or false when no Redis is configured);
                     "degraded" fails unless --allow-degraded
  security_headers   HSTS with a max-age, nosniff, frame DENY, no-referrer,
                     a CSP, no Server header
  not_found          an unknown route is a 404 application/problem+json
  cors_preflight     (--origin) an OPTIONS preflight from ORIGIN is allowed
  cors_refused       a preflight from --refused-origin gets no
                     Access-Control-Allow-Origin
  otp_request        (--phone) POST /api/auth/otp/request answers 200
  verify_otp         (--phone) POST /api/auth/verify-otp with --code (or the
                     DEV_MODE preview_code) answers tokens
  me                 (--phone) GET /api/me with the access token is that user
  moods              (--phone) GET /api/moods answers a JSON array
  logout             (--phone) POST /api/auth/logout answers 204, and the
                     refresh token is refused afterwards
  otp_burst          (--burst-phone) code requests for that number until a
                     429 problem+json with Retry-After (at most 10 requests);
                     --skip-burst leaves it out

When /healthz gets no answer at all (nothing listens, a timeout), the run
stops there: the other checks are listed as not run.

On production use a number from OTP_TEST_NUMBERS with its fixed code: the
sign-in creates (or reuses) that number's account and sends no SMS. The
burst spends one of the caller IP's 5 code requests per 5 minutes and the
burst number's one code a minute; give it a second OTP_TEST_NUMBERS number
(never a real person's: on production a listed number sends no SMS).
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o SmokeOptions
			f := cmd.Flags()
			o.BaseURL, _ = f.GetString("base-url")
			o.Origin, _ = f.GetString("origin")
			o.RefusedOrigin, _ = f.GetString("refused-origin")
			o.Phone, _ = f.GetString("phone")
			o.Code, _ = f.GetString("code")
			o.BurstPhone, _ = f.GetString("burst-phone")
			o.SkipBurst, _ = f.GetBool("skip-burst")
			o.AllowDegraded, _ = f.GetBool("allow-degraded")
			o.Timeout, _ = f.GetDuration("timeout")
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return Smoke(ctx, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.String("base-url", "", "the deployment's URL, e.g. https://api-staging.soulapp.app (required)")
	f.String("origin", "", "a browser origin in CORS_ORIGINS: check its preflight is allowed")
	f.String("refused-origin", DefaultRefusedOrigin, "an origin not in CORS_ORIGINS: check its preflight is refused")
	f.String("phone", "", "sign in with this number (OTP_TEST_NUMBERS on production)")
	f.String("code", "", "the phone's one-time code (default: the DEV_MODE preview_code)")
	f.String("burst-phone", "", "the number the OTP burst asks codes for (not --phone; OTP_TEST_NUMBERS on production)")
	f.Bool("skip-burst", false, "leave out the OTP burst to a 429")
	f.Bool("allow-degraded", false, `accept /healthz "degraded" (Redis configured but down)`)
	f.Duration("timeout", 10*time.Second, "give up on a request after this long")
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
	if o.RefusedOrigin == "" {
		o.RefusedOrigin = DefaultRefusedOrigin
	}
	if o.Origin != "" && o.Origin == o.RefusedOrigin {
		return errors.New("smoke: --origin and --refused-origin must differ")
	}
	if !o.SkipBurst && o.BurstPhone != "" && o.Phone != "" && digits(o.Phone) == digits(o.BurstPhone) {
		return errors.New("smoke: --burst-phone must differ from --phone: the burst would spend the sign-in's limits")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: o.Timeout}
	}
	s := &smoke{ctx: ctx, base: base.String(), client: client, timeout: o.Timeout, out: out}

	s.check("healthz", func() (string, error) { return s.healthz(o.AllowDegraded) })
	s.check("security_headers", s.securityHeaders)
	s.check("not_found", s.notFound)
	if o.Origin != "" {
		s.check("cors_preflight", func() (string, error) { return s.preflightAllowed(o.Origin) })
	} else {
		s.skip("no --origin given", "cors_preflight")
	}
	s.check("cors_refused", func() (string, error) { return s.preflightRefused(o.RefusedOrigin) })
	if o.Phone != "" {
		s.signIn(o.Phone, o.Code)
	} else {
		s.skip("no --phone given", signInChecks...)
	}
	// After the sign-in, so its code request still has room under the
	// per-IP limit the burst may use up.
	switch {
	case o.SkipBurst:
		s.skip("--skip-burst", "otp_burst")
	case o.BurstPhone == "":
		// No default: a number of our choosing could be a real person's.
		s.skip("no --burst-phone given", "otp_burst")
	default:
		s.check("otp_burst", func() (string, error) { return s.otpBurst(o.BurstPhone) })
	}

	if s.unanswered != nil {
		fmt.Fprintf(s.out, "skip %s: not run: %s did not answer\n", strings.Join(s.notRun, ", "), s.base)
	}
	if len(s.failed) > 0 {
		fmt.Fprintf(out, "FAILED %d of %d checks against %s: %s\n", len(s.failed), s.ran, s.base, strings.Join(s.failed, ", "))
		return fmt.Errorf("smoke: failed: %s", strings.Join(s.failed, ", "))
	}
	summary := fmt.Sprintf("PASSED all %d checks against %s", s.ran, s.base)
	if len(s.skipped) > 0 {
		summary += " (skipped: " + strings.Join(s.skipped, ", ") + ")"
	}
	fmt.Fprintln(out, summary)
	return nil
}

// signInChecks are the checks of the sign-in round, in order.
var signInChecks = []string{"otp_request", "verify_otp", "me", "moods", "logout"}

type smoke struct {
	ctx     context.Context
	base    string
	client  *http.Client
	timeout time.Duration
	out     io.Writer
	ran     int
	failed  []string
	skipped []string
	// unanswered is the first request that got no answer at all; the
	// checks after it are only listed in notRun, so a dead deployment
	// costs one timeout rather than one per check.
	unanswered *noAnswer
	notRun     []string
	// healthAnswer is /healthz's answer, kept for the header check.
	healthAnswer *smokeAnswer
}

// check runs one named check and prints its line: "ok   name: what was
// seen" or "FAIL name: why".
func (s *smoke) check(name string, run func() (string, error)) bool {
	if s.unanswered != nil {
		s.notRun = append(s.notRun, name)
		return false
	}
	s.ran++
	note, err := run()
	if err != nil {
		s.failed = append(s.failed, name)
		fmt.Fprintf(s.out, "FAIL %s: %v\n", name, err)
		var na *noAnswer
		if errors.As(err, &na) {
			s.unanswered = na
		}
		return false
	}
	if note != "" {
		note = ": " + note
	}
	fmt.Fprintf(s.out, "ok   %s%s\n", name, note)
	return true
}

// skip prints one line for checks that do not run, because of an option
// or because an earlier check they need failed.
func (s *smoke) skip(because string, names ...string) {
	if s.unanswered != nil {
		s.notRun = append(s.notRun, names...)
		return
	}
	s.skipped = append(s.skipped, names...)
	fmt.Fprintf(s.out, "skip %s: %s\n", strings.Join(names, ", "), because)
}

type smokeAnswer struct {
	status int
	header http.Header
	body   []byte
}

// noAnswer is a request that got no HTTP answer: nothing listening, a
// timeout, a name that does not resolve, a TLS failure.
type noAnswer struct {
	request string
	host    string
	timeout time.Duration
	err     error
}

func (e *noAnswer) Error() string {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(e.err, context.DeadlineExceeded) || isTimeout(e.err):
		return fmt.Sprintf("%s: no answer from %s within %s (--timeout)", e.request, e.host, e.timeout)
	case errors.Is(e.err, syscall.ECONNREFUSED):
		return fmt.Sprintf("%s: cannot connect to %s: connection refused (nothing listens there)", e.request, e.host)
	case errors.As(e.err, &dnsErr):
		return fmt.Sprintf("%s: cannot resolve %s: %v", e.request, dnsErr.Name, dnsErr.Err)
	}
	err := e.err
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Sprintf("%s: no answer from %s: %v", e.request, e.host, err)
}

func (e *noAnswer) Unwrap() error { return e.err }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *smoke) do(method, path string, body any, header ...string) (*smokeAnswer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding the %s %s body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(s.ctx, method, s.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("building %s %s: %w", method, path, err)
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
		return nil, &noAnswer{request: method + " " + path, host: req.URL.Host, timeout: s.timeout, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &noAnswer{request: method + " " + path + " (reading the answer)", host: req.URL.Host, timeout: s.timeout, err: err}
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

func (s *smoke) healthz(allowDegraded bool) (string, error) {
	a, err := s.do(http.MethodGet, "/healthz", nil)
	if err != nil {
		return "", err
	}
	s.healthAnswer = a
	if a.status != http.StatusOK {
		return "", unexpected(a, "200")
	}
	var h struct {
		Status  string `json:"status"`
		DB      bool   `json:"db"`
		Redis   bool   `json:"redis"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(a.body, &h); err != nil {
		return "", fmt.Errorf("body is not the health JSON: %v", err)
	}
	if !h.DB {
		return "", errors.New(`"db" is false`)
	}
	flags := fmt.Sprintf("status=%s db=%t redis=%t version=%s", h.Status, h.DB, h.Redis, h.Version)
	switch {
	case h.Status == "ok" && h.Redis:
		return flags, nil
	case h.Status == "ok":
		// What /healthz says when no REDIS_URL is set; production refuses
		// to start that way, so this is a development or test deployment.
		return flags + " (no Redis configured: embedded mode, limits per instance)", nil
	case h.Status == "degraded" && allowDegraded:
		return flags + " (Redis configured but not answering; accepted by --allow-degraded)", nil
	case h.Status == "degraded":
		return "", fmt.Errorf("%s: Redis is configured but not answering, so limits are per instance (--allow-degraded accepts this)", flags)
	}
	return "", fmt.Errorf("%s: want status ok", flags)
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
	if hsts := h.Get("Strict-Transport-Security"); hsts != "" && hstsMaxAge(hsts) <= 0 {
		bad = append(bad, fmt.Sprintf("Strict-Transport-Security %q has no positive max-age", hsts))
	}
	if v := h.Get("Server"); v != "" {
		bad = append(bad, fmt.Sprintf("Server header %q present", v))
	}
	return bad
}

// hstsMaxAge returns the max-age of a Strict-Transport-Security value, or
// -1 when it has none.
func hstsMaxAge(v string) int64 {
	for _, d := range strings.Split(v, ";") {
		name, val, ok := strings.Cut(strings.TrimSpace(d), "=")
		if ok && strings.EqualFold(name, "max-age") {
			n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

func (s *smoke) securityHeaders() (string, error) {
	a := s.healthAnswer
	if a == nil {
		var err error
		if a, err = s.do(http.MethodGet, "/healthz", nil); err != nil {
			return "", err
		}
	}
	if bad := missingHeaders(a.header); len(bad) > 0 {
		return "", fmt.Errorf("on /healthz: %s", strings.Join(bad, "; "))
	}
	return fmt.Sprintf("HSTS max-age=%d, nosniff, DENY, no-referrer, CSP, no Server", hstsMaxAge(a.header.Get("Strict-Transport-Security"))), nil
}

func (s *smoke) notFound() (string, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	path := "/api/smoke-" + hex.EncodeToString(b[:])
	a, err := s.do(http.MethodGet, path, nil)
	if err != nil {
		return "", err
	}
	if a.status != http.StatusNotFound {
		return "", unexpected(a, "404")
	}
	p, err := problemOf(a)
	if err != nil {
		return "", err
	}
	if p.Status != http.StatusNotFound || p.Code == "" || p.Title != http.StatusText(http.StatusNotFound) {
		return "", fmt.Errorf("malformed problem: %s", a.body)
	}
	if bad := missingHeaders(a.header); len(bad) > 0 {
		return "", fmt.Errorf("on a 404: %s", strings.Join(bad, "; "))
	}
	return "", nil
}

type smokeProblem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Code   string `json:"code"`
}

// problemOf decodes an application/problem+json answer.
func problemOf(a *smokeAnswer) (smokeProblem, error) {
	var p smokeProblem
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		return p, fmt.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	if err := json.Unmarshal(a.body, &p); err != nil {
		return p, fmt.Errorf("body is not a problem: %v", err)
	}
	return p, nil
}

func (s *smoke) preflight(origin string) (*smokeAnswer, error) {
	return s.do(http.MethodOptions, "/api/moods", nil,
		"Origin", origin,
		"Access-Control-Request-Method", http.MethodPost,
		"Access-Control-Request-Headers", "authorization, content-type")
}

func (s *smoke) preflightAllowed(origin string) (string, error) {
	a, err := s.preflight(origin)
	if err != nil {
		return "", err
	}
	if a.status < 200 || a.status > 299 {
		return "", unexpected(a, "2xx (is the origin in CORS_ORIGINS?)")
	}
	got := a.header.Get("Access-Control-Allow-Origin")
	if got != origin && got != "*" {
		return "", fmt.Errorf("Access-Control-Allow-Origin %q, want %q", got, origin)
	}
	if m := a.header.Get("Access-Control-Allow-Methods"); !strings.Contains(strings.ToUpper(m), http.MethodPost) {
		return "", fmt.Errorf("Access-Control-Allow-Methods %q lacks POST", m)
	}
	return fmt.Sprintf("%s allowed (status %d, Access-Control-Allow-Origin %s)", origin, a.status, got), nil
}

// preflightRefused passes when a browser would refuse the origin: the
// answer allows neither it nor every origin.
func (s *smoke) preflightRefused(origin string) (string, error) {
	a, err := s.preflight(origin)
	if err != nil {
		return "", err
	}
	switch got := a.header.Get("Access-Control-Allow-Origin"); got {
	case "":
	case "*":
		return "", fmt.Errorf("status %d with Access-Control-Allow-Origin *: CORS_ORIGINS allows every origin", a.status)
	case origin:
		return "", fmt.Errorf("status %d with Access-Control-Allow-Origin %s: is it in CORS_ORIGINS?", a.status, origin)
	}
	return fmt.Sprintf("%s refused (status %d, no Access-Control-Allow-Origin)", origin, a.status), nil
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
	ok := s.check("otp_request", func() (string, error) {
		a, err := s.do(http.MethodPost, "/api/auth/otp/request", map[string]string{"phone": phone})
		if err != nil {
			return "", err
		}
		if a.status != http.StatusOK {
			return "", unexpected(a, "200")
		}
		var r struct {
			Status      string `json:"status"`
			PreviewCode string `json:"preview_code"`
		}
		if err := json.Unmarshal(a.body, &r); err != nil || r.Status != "ok" {
			return "", fmt.Errorf("answer is not {\"status\":\"ok\"}: %s", a.body)
		}
		preview = r.PreviewCode
		if code == "" && preview != "" {
			return "preview_code returned (DEV_MODE)", nil
		}
		return "", nil
	})
	if !ok {
		s.skip("not run: otp_request failed", signInChecks[1:]...)
		return
	}

	var tok smokeTokens
	ok = s.check("verify_otp", func() (string, error) {
		c := code
		if c == "" {
			c = preview
		}
		if c == "" {
			return "", errors.New("no --code given and the deployment returned no preview_code (DEV_MODE=false, or a number of OTP_TEST_NUMBERS: pass its --code)")
		}
		a, err := s.do(http.MethodPost, "/api/auth/verify-otp", map[string]string{"phone": phone, "code": c})
		if err != nil {
			return "", err
		}
		if a.status != http.StatusOK {
			return "", unexpected(a, "200")
		}
		if err := json.Unmarshal(a.body, &tok); err != nil || tok.AccessToken == "" || tok.RefreshToken == "" {
			return "", errors.New("answer holds no access_token and refresh_token")
		}
		return "signed in as user " + tok.User.ID, nil
	})
	if !ok {
		s.skip("not run: verify_otp failed", signInChecks[2:]...)
		return
	}
	bearer := "Bearer " + tok.AccessToken

	s.check("me", func() (string, error) {
		a, err := s.do(http.MethodGet, "/api/me", nil, "Authorization", bearer)
		if err != nil {
			return "", err
		}
		if a.status != http.StatusOK {
			return "", unexpected(a, "200")
		}
		var u struct {
			ID    string `json:"id"`
			Phone string `json:"phone"`
		}
		if err := json.Unmarshal(a.body, &u); err != nil {
			return "", fmt.Errorf("body is not a user: %v", err)
		}
		if u.ID == "" || u.ID != tok.User.ID {
			return "", fmt.Errorf("user %q, want the signed-in %q", u.ID, tok.User.ID)
		}
		return "", nil
	})

	s.check("moods", func() (string, error) {
		a, err := s.do(http.MethodGet, "/api/moods?limit=1", nil, "Authorization", bearer)
		if err != nil {
			return "", err
		}
		if a.status != http.StatusOK {
			return "", unexpected(a, "200")
		}
		var list []json.RawMessage
		if err := json.Unmarshal(a.body, &list); err != nil {
			return "", fmt.Errorf("body is not a JSON array: %v", err)
		}
		return "", nil
	})

	s.check("logout", func() (string, error) {
		body := map[string]string{"refresh_token": tok.RefreshToken}
		a, err := s.do(http.MethodPost, "/api/auth/logout", body, "Authorization", bearer)
		if err != nil {
			return "", err
		}
		if a.status != http.StatusNoContent {
			return "", unexpected(a, "204")
		}
		a, err = s.do(http.MethodPost, "/api/auth/refresh", body)
		if err != nil {
			return "", err
		}
		if a.status != http.StatusUnauthorized {
			return "", fmt.Errorf("refresh after logout: %w", unexpected(a, "401"))
		}
		return "refresh token refused afterwards", nil
	})
}

// otpBurst asks codes for phone until the deployment refuses with a 429
// problem carrying Retry-After, within burstRequests requests.
func (s *smoke) otpBurst(phone string) (string, error) {
	var seen []string
	for i := 1; i <= burstRequests; i++ {
		a, err := s.do(http.MethodPost, "/api/auth/otp/request", map[string]string{"phone": phone})
		if err != nil {
			return "", err
		}
		if a.status != http.StatusTooManyRequests {
			// A refused number is not counted by the limits: asking
			// again would never reach a 429.
			if a.status == http.StatusBadRequest || a.status == http.StatusUnprocessableEntity {
				return "", fmt.Errorf("request %d: %w (pass a valid --burst-phone)", i, unexpected(a, "200 or 429"))
			}
			seen = append(seen, strconv.Itoa(a.status))
			continue
		}
		p, err := problemOf(a)
		if err != nil {
			return "", fmt.Errorf("the 429 at request %d: %w", i, err)
		}
		if p.Title != http.StatusText(http.StatusTooManyRequests) || p.Status != http.StatusTooManyRequests {
			return "", fmt.Errorf("the 429 at request %d: title %q and status %d, want %q and 429", i, p.Title, p.Status, http.StatusText(http.StatusTooManyRequests))
		}
		ra := a.header.Get("Retry-After")
		if n, err := strconv.Atoi(ra); err != nil || n <= 0 {
			return "", fmt.Errorf("the 429 at request %d: Retry-After %q, want a positive number of seconds", i, ra)
		}
		note := fmt.Sprintf("429 %q at request %d, Retry-After %ss", p.Title, i, ra)
		if policy := a.header.Get("RateLimit-Policy"); policy != "" {
			note += ", RateLimit-Policy " + policy
		}
		return note, nil
	}
	return "", fmt.Errorf("no 429 within %d requests (statuses: %s)", burstRequests, strings.Join(seen, " "))
}

// digits keeps a phone number's digits, so "+1 415 555 0199" and
// "+14155550199" compare equal.
func digits(phone string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, phone)
}
