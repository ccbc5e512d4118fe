// Package soulauth is the `soul_auth` handler: phone sign-in with one-time
// codes, rotating refresh tokens, logout, and the signed-in user's account
// at /api/me. The codes come from a soul.otp_providers module (otplocal,
// otptwilio); the token check every handler shares is the `soul` app's
// Authenticator.
package soulauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/soulapp/soul/caddymodules/soul"
	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/authbody"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/device"
	"github.com/soulapp/soul/internal/httpapi"
	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/metrics"
	"github.com/soulapp/soul/internal/otp"
	"github.com/soulapp/soul/internal/phone"
	"github.com/soulapp/soul/internal/problem"
	"github.com/soulapp/soul/internal/ratelimitheaders"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// The routes this handler answers.
const (
	PathOTPRequest = "/api/auth/otp/request"
	PathVerifyOTP  = "/api/auth/verify-otp"
	PathRefresh    = "/api/auth/refresh"
	PathLogout     = "/api/auth/logout"
	PathMe         = "/api/me"
)

// Handler answers the sign-in routes, /api/me, its export and its
// sessions (signed-in devices); any other path under it is 404. Codes come from the OTP provider module (soul.otp_providers.*),
// local codes when none is configured (DEV_MODE only).
type Handler struct {
	// The code provider, a soul.otp_providers module: twilio_verify in
	// production. Left out, or a provider whose credentials are unset in
	// DEV_MODE, is local codes.
	OTPProviderRaw json.RawMessage `json:"otp_provider,omitempty" caddy:"namespace=soul.otp_providers inline_key=provider"`
	// Numbers that sign in with a fixed code, for App Store review:
	// "+15555550100=123456,...", a runtime placeholder such as
	// {env.OTP_TEST_NUMBERS} (the codes are secrets). OTP_TEST_NUMBERS.
	TestNumbers string `json:"test_numbers,omitempty"`
	// The instant after which the test numbers stop working; required with
	// them. OTP_TEST_NUMBERS_VALID_UNTIL.
	TestNumbersValidUntil *time.Time `json:"test_numbers_valid_until,omitempty"`
	// Refresh token lifetime in days, 1–365. REFRESH_TOKEN_EXPIRE_DAYS;
	// default 30.
	RefreshTokenExpireDays int `json:"refresh_token_expire_days,omitempty"`
	// Overrides of the sign-in rate limits, by rule name: otp_request,
	// otp_send, otp_send_day, otp_verify, otp_attempts, refresh,
	// otp_budget, otp_budget_country.
	Limits map[string]Limit `json:"limits,omitempty"`
	// The countries codes may be sent to, ISO 3166-1 alpha-2 codes; empty
	// is all. A number of any other country is refused before any send
	// (422 phone_country_not_allowed); test numbers are not. Known codes
	// only: a typo stops the start. OTP_ALLOWED_COUNTRIES.
	AllowedCountries []string `json:"allowed_countries,omitempty"`
	// Codes sent per hour by all replicas together, and to one country:
	// the SMS budget (otp_budget, otp_budget_country), past which code
	// requests answer 429 sms_budget_exhausted. OTP_SEND_BUDGET_HOURLY,
	// default 1000; OTP_SEND_BUDGET_HOURLY_PER_COUNTRY, default 200.
	SendBudgetHourly           int `json:"send_budget_hourly,omitempty"`
	SendBudgetHourlyPerCountry int `json:"send_budget_hourly_per_country,omitempty"`

	app     *soul.App
	service *auth.Service
	authn   *auth.Authenticator
	logger  *zap.Logger
}

// Limit is one rate limit: at most Count hits in any span of Window.
type Limit struct {
	Count  int            `json:"count"`
	Window caddy.Duration `json:"window"`
}

// limits applies the configured overrides to the defaults.
func (h *Handler) limits() (auth.Limits, error) {
	l := auth.DefaultLimits()
	rules := map[string]*limiter.Rule{}
	var names []string
	for _, r := range l.Rules() {
		rules[r.Name] = r.Rule
		names = append(names, r.Name)
	}
	for name, o := range h.Limits {
		r, ok := rules[name]
		if !ok {
			return l, fmt.Errorf("soul_auth: unknown limit %q; the limits are %s", name, strings.Join(names, ", "))
		}
		if o.Count < 1 || o.Window <= 0 {
			return l, fmt.Errorf("soul_auth: limit %s: want a count of 1 or more and a positive window", name)
		}
		r.Limit, r.Window = o.Count, time.Duration(o.Window)
	}
	for _, b := range []struct {
		n    int
		rule *limiter.Rule
		env  string
	}{
		{h.SendBudgetHourly, &l.SendBudget, "OTP_SEND_BUDGET_HOURLY"},
		{h.SendBudgetHourlyPerCountry, &l.SendBudgetPerCountry, "OTP_SEND_BUDGET_HOURLY_PER_COUNTRY"},
	} {
		switch {
		case b.n < 0:
			return l, fmt.Errorf("soul_auth: %s must be a whole number of 1 or more", b.env)
		case b.n > 0:
			b.rule.Limit, b.rule.Window = b.n, time.Hour
		}
	}
	return l, nil
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.soul_auth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision builds the sign-in service on the `soul` app's shared
// services and the configured code provider.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := metrics.Register(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	app, err := soul.FromContext(ctx)
	if err != nil {
		return err
	}
	h.app = app
	provider, err := h.loadProvider(ctx, app)
	if err != nil {
		return err
	}

	var until string
	if h.TestNumbersValidUntil != nil {
		until = h.TestNumbersValidUntil.Format(time.RFC3339)
	}
	numbers := strings.TrimSpace(caddy.NewReplacer().ReplaceAll(h.TestNumbers, ""))
	if numbers != "" && until == "" {
		return errors.New("soul_auth: OTP_TEST_NUMBERS needs OTP_TEST_NUMBERS_VALID_UNTIL (RFC 3339)")
	}
	// Test numbers are often fictional ranges, so they are read loosely;
	// only a listed number is ever accepted that way.
	tests, err := otp.ParseTestNumbers(numbers, until, phone.NormalizeLoose)
	if err != nil {
		return err
	}

	refreshTTL := 30 * 24 * time.Hour
	if n := h.RefreshTokenExpireDays; n != 0 {
		if n < 1 || n > 365 {
			return errors.New("soul_auth: REFRESH_TOKEN_EXPIRE_DAYS must be a whole number from 1 to 365")
		}
		refreshTTL = time.Duration(n) * 24 * time.Hour
	}
	sealKeys, err := app.DeriveKeys(auth.LabelRefreshSeal)
	if err != nil {
		return err
	}
	limits, err := h.limits()
	if err != nil {
		return err
	}
	countries, err := phone.ParseCountries(strings.Join(h.AllowedCountries, ","))
	if err != nil {
		return fmt.Errorf("soul_auth: OTP_ALLOWED_COUNTRIES: %w", err)
	}
	lim := app.Limiter()
	h.service, err = auth.NewService(auth.Config{
		DB:               app.DB(),
		Issuer:           app.Issuer(),
		Provider:         provider,
		Limiter:          lim,
		Limits:           limits,
		TestNumbers:      tests,
		AllowedCountries: countries,
		RefreshTTL:       refreshTTL,
		SealKeys:         sealKeys,
		Preview:          app.DevMode(),
	})
	if err != nil {
		return err
	}
	h.authn = app.Authenticator()
	h.logger.Info("sign-in ready",
		zap.String("otp_provider", provider.Name()),
		zap.Int("otp_test_numbers", tests.Len()),
		zap.Strings("otp_allowed_countries", countries),
		zap.Int("otp_send_budget_hourly", limits.SendBudget.Limit),
		zap.Int("otp_send_budget_hourly_per_country", limits.SendBudgetPerCountry.Limit),
		zap.String("rate_limit_storage", lim.Storage()))
	return nil
}

// unconfigured is a provider that can tell it lacks its credentials.
type unconfigured interface {
	Configured() bool
	Missing() string
}

// loadProvider loads the configured code provider. One whose credentials
// are unset stops the start outside DEV_MODE and gives way to local codes
// in it, so one Caddyfile serves production and `make run`.
func (h *Handler) loadProvider(ctx caddy.Context, app *soul.App) (auth.Provider, error) {
	if h.OTPProviderRaw != nil {
		m, err := ctx.LoadModule(h, "OTPProviderRaw")
		if err != nil {
			return nil, fmt.Errorf("soul_auth: loading otp_provider: %w", err)
		}
		p, ok := m.(auth.Provider)
		if !ok {
			return nil, fmt.Errorf("soul_auth: module %T is not an OTP provider", m)
		}
		u, ok := p.(unconfigured)
		if !ok || u.Configured() {
			return p, nil
		}
		if !app.DevMode() {
			return nil, fmt.Errorf("invalid configuration: %s", u.Missing())
		}
	}
	m, err := ctx.LoadModuleByID("soul.otp_providers.local", json.RawMessage("{}"))
	if err != nil {
		return nil, err
	}
	return m.(auth.Provider), nil
}

// ServeHTTP routes by path and method.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	switch r.URL.Path {
	case PathOTPRequest:
		return onlyPost(w, r, h.otpRequest)
	case PathVerifyOTP:
		return onlyPost(w, r, h.verifyOTP)
	case PathRefresh:
		return onlyPost(w, r, h.refresh)
	case PathLogout:
		return onlyPost(w, r, h.logout)
	case PathMe:
		switch r.Method {
		case http.MethodGet:
			return h.me(w, r)
		case http.MethodDelete:
			return h.deleteMe(w, r)
		}
		return httpapi.MethodNotAllowed(http.MethodGet, http.MethodDelete)
	case PathExport:
		if r.Method != http.MethodGet {
			return httpapi.MethodNotAllowed(http.MethodGet)
		}
		return h.export(w, r)
	}
	if ok, err := h.serveSessions(w, r); ok {
		return err
	}
	return httpapi.NotFound()
}

func onlyPost(w http.ResponseWriter, r *http.Request, next func(http.ResponseWriter, *http.Request) error) error {
	if r.Method != http.MethodPost {
		return httpapi.MethodNotAllowed(http.MethodPost)
	}
	return next(w, r)
}

// OTPSent answers a code request.
type OTPSent struct {
	Status      string `json:"status"`
	ExpiresIn   int    `json:"expires_in"`
	PreviewCode string `json:"preview_code,omitempty"`
}

// TokenPair answers a sign-in or refresh.
type TokenPair struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	TokenType    string    `json:"token_type"`
	ExpiresIn    int       `json:"expires_in"`
	User         auth.User `json:"user"`
}

func (h *Handler) otpRequest(w http.ResponseWriter, r *http.Request) error {
	req, err := authbody.DecodeOTPRequest(r)
	if err != nil {
		return h.fail(err)
	}
	e164, err := h.service.NormalizePhone(req.Phone)
	if err != nil {
		metrics.OTPSends.WithLabelValues(auth.Result(err)).Inc()
		return h.fail(err)
	}
	checks := new(auth.LimitChecks)
	sent, err := h.service.RequestCode(auth.WithLimitChecks(r.Context(), checks), h.client(r), e164)
	metrics.OTPSends.WithLabelValues(auth.Result(err)).Inc()
	if err != nil {
		return h.failChecked(err, checks)
	}
	setLimitFields(w.Header(), checks)
	if h.logger.Core().Enabled(zap.InfoLevel) {
		h.logger.Info("sign-in code sent", zap.String("phone", phone.Mask(e164)),
			zap.String("provider", h.service.Provider().Name()))
	}
	return httpapi.WriteJSON(w, http.StatusOK, OTPSent{
		Status:      "ok",
		ExpiresIn:   int(sent.ExpiresIn / time.Second),
		PreviewCode: sent.Preview,
	})
}

func (h *Handler) verifyOTP(w http.ResponseWriter, r *http.Request) error {
	req, err := authbody.DecodeVerifyOTPRequest(r)
	if err != nil {
		return h.fail(err)
	}
	e164, err := h.service.NormalizePhone(req.Phone)
	if err != nil {
		return h.fail(err)
	}
	checks := new(auth.LimitChecks)
	ctx := auth.WithDevice(auth.WithLimitChecks(r.Context(), checks), device.FromHeaders(r.Header))
	g, err := h.service.VerifyCode(ctx, h.client(r), e164, req.Code)
	metrics.OTPChecks.WithLabelValues(auth.Result(err)).Inc()
	if err != nil {
		if h.logger.Core().Enabled(zap.InfoLevel) {
			h.logger.Info("sign-in refused", zap.String("phone", phone.Mask(e164)), zap.String("reason", auth.Reason(err)))
		}
		return h.failChecked(err, checks)
	}
	setLimitFields(w.Header(), checks)
	if h.logger.Core().Enabled(zap.InfoLevel) {
		h.logger.Info("signed in", zap.String("user_id", g.User.ID.String()),
			zap.String("session_id", g.SessionID.String()), zap.Bool("new_user", g.NewUser))
	}
	return writeGrant(w, g)
}

func (h *Handler) refresh(w http.ResponseWriter, r *http.Request) error {
	req, err := authbody.DecodeRefreshRequest(r)
	if err != nil {
		return h.fail(err)
	}
	checks := new(auth.LimitChecks)
	ctx := auth.WithDevice(auth.WithLimitChecks(r.Context(), checks), device.FromHeaders(r.Header))
	g, err := h.service.Refresh(ctx, h.client(r), req.RefreshToken)
	metrics.Refreshes.WithLabelValues(auth.Result(err)).Inc()
	if err != nil {
		if errors.Is(err, auth.ErrRefreshReused) {
			h.logger.Warn("refresh token reused: session revoked")
		}
		return h.failChecked(err, checks)
	}
	setLimitFields(w.Header(), checks)
	return writeGrant(w, g)
}

// logout answers 204 whether or not the token named a live session: the
// client's goal (that token no longer works) holds either way, a retry is
// harmless, and the answer tells nothing about which tokens exist. It
// makes no limit check of its own: the Caddyfile's default policy in front
// limits it and sets the rate-limit fields.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) error {
	req, err := authbody.DecodeRefreshRequest(r)
	if err != nil {
		return h.fail(err)
	}
	if _, err := h.service.Logout(r.Context(), req.RefreshToken); err != nil {
		return h.fail(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) error {
	id, err := h.authn.Authenticate(r)
	if err != nil {
		return err
	}
	u, err := h.service.User(r.Context(), id)
	if err != nil {
		return h.fail(err)
	}
	return httpapi.WriteJSON(w, http.StatusOK, u)
}

func (h *Handler) deleteMe(w http.ResponseWriter, r *http.Request) error {
	id, err := h.authn.Authenticate(r)
	if err != nil {
		return err
	}
	switch err := h.service.DeleteUser(r.Context(), id); {
	case errors.Is(err, auth.ErrLimitsKept):
		// The account is gone; entries Redis could not drop expire with
		// their windows and hold no phone number in clear.
		h.logger.Warn("account deleted; some rate-limit entries remain until they expire", zap.Error(err))
	case err != nil && !errors.Is(err, auth.ErrNotFound):
		return h.fail(err)
	}
	h.logger.Info("account deleted", zap.String("user_id", id.String()))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// fail turns the service's outcomes into API problems.
func (h *Handler) fail(err error) error {
	return h.failChecked(err, nil)
}

// failChecked is fail for the outcome of a Service call that made the limit
// checks in checks. A refusal reports the policy that refused (setRetry);
// any other answer reports the tightest check, as a success would. The
// Service's own errors are answered as auth.Outcomes says.
func (h *Handler) failChecked(err error, checks *auth.LimitChecks) error {
	var pe *problem.Error
	if errors.As(err, &pe) {
		return httpapi.Problem(pe)
	}
	var e *problem.Error
	if o, ok := auth.OutcomeOf(err); ok {
		if errors.Is(err, auth.ErrProviderUnavailable) {
			h.logger.Error("SMS provider unavailable", zap.Error(err))
		}
		e = o.Problem()
	} else if database.Unavailable(err) {
		// Down, restarting or out of connections: the client retries, as
		// the moods routes tell it to.
		h.logger.Error("sign-in: database unavailable", zap.Error(err))
		e = httpapi.UnavailableProblem()
	} else {
		h.logger.Error("sign-in failed", zap.Error(err))
		e = problem.From(nil, http.StatusInternalServerError)
	}
	var re *auth.RetryError
	if errors.As(err, &re) {
		setRetry(e, re)
	} else if d, ok := checks.Tightest(); ok {
		// problem.Write puts these in place of the fields of a policy in
		// front, as setLimitFields does on a success.
		e.Header = ratelimitheaders.Header(d.Rule.Name, d, time.Now())
	}
	return httpapi.Problem(e)
}

// setLimitFields writes the rate-limit fields of the check closest to
// refusing among checks, so the client sees the tightest quota it is
// subject to, under the rule's name (otp_request, otp_send, ...). They
// replace the fields of any soul_rate_limit policy in front of this
// handler: a client reads one policy per answer. Nothing is written when
// no check was made.
func setLimitFields(h http.Header, checks *auth.LimitChecks) {
	if d, ok := checks.Tightest(); ok {
		ratelimitheaders.Set(h, d.Rule.Name, d, time.Now())
	}
}

// setRetry tells the client of e when to retry: Retry-After, and the
// rate-limit fields of the policy that refused. problem.Write puts those
// fields in place of any a policy in front of this handler set on the
// response (soul_rate_limit passes a request with its own fields, room
// left in them), so a 429 never says that requests remain. A refusal that
// is no limiter's (re.Decision nil) gets no fields of soul_auth's: those
// of the checks it passed would say that requests remain.
func setRetry(e *problem.Error, re *auth.RetryError) {
	if re.RetryAfter > 0 {
		e.RetryAfter = re.RetryAfter
	}
	if re.Decision != nil {
		e.Header = ratelimitheaders.Header(re.Decision.Rule.Name, *re.Decision, time.Now())
	}
}

func writeGrant(w http.ResponseWriter, g auth.Grant) error {
	return httpapi.WriteJSON(w, http.StatusOK, TokenPair{
		AccessToken:  g.AccessToken,
		RefreshToken: g.RefreshToken,
		TokenType:    "bearer",
		ExpiresIn:    int(g.ExpiresIn / time.Second),
		User:         g.User,
	})
}

// client names the client for the per-IP sign-in limits: its address, an
// IPv6 one by its network (RATE_LIMIT_IPV6_PREFIX).
func (h *Handler) client(r *http.Request) string {
	return h.app.ClientAddr(r)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
