// Package soulratelimit is the `soul_rate_limit` handler: one named
// rate-limit policy (its settings in the README's configuration) enforced exactly
// across replicas through the shared limiter (Redis, one round trip per
// request; per-instance memory while Redis is down), with the rate-limit
// header fields on every answer it passes and a problem+json 429 with
// Retry-After on the ones it refuses.
//
// It sits behind `soul_shield`, the coarse per-client shield kept in
// memory, so floods are turned away before they cost a Redis call.
package soulratelimit

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/soulapp/soul/caddymodules/soul"
	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/httpapi"
	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/metrics"
	"github.com/soulapp/soul/internal/problem"
	"github.com/soulapp/soul/internal/ratelimitheaders"
	"github.com/soulapp/soul/internal/token"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// The subjects a policy can key on.
const (
	// KeyUser counts per signed-in user (the verified access token's
	// subject), and per client IP for requests without a valid token.
	KeyUser = "user"
	// KeyIP counts per client IP.
	KeyIP = "ip"
)

// probeTimeout bounds the Redis ping at provision: long enough for a first
// dial over a private network, short enough not to hold up a start or a
// reload when Redis is away.
const probeTimeout = time.Second

// The "default" policy (100 requests a minute per user), used for unset
// fields.
const (
	DefaultPolicy = "default"
	DefaultLimit  = 100
	DefaultWindow = time.Minute
)

// Handler admits at most Limit requests per subject in any span of Window,
// counted under the policy's name: every handler with the same Policy
// shares one budget per subject, on every replica sharing the Redis.
type Handler struct {
	// The policy's name, shown to clients in RateLimit-Policy and naming its
	// counters. Letters, digits, '_', '-' and '.'. Default "default".
	Policy string `json:"policy,omitempty"`
	// Requests admitted per subject in any span of Window. Default 100.
	Limit int `json:"limit,omitempty"`
	// The span Limit applies to. Default 1m.
	Window caddy.Duration `json:"window,omitempty"`
	// What a request is counted against: "user" (the access token's user,
	// else the client IP) or "ip". Default "user".
	Key string `json:"key,omitempty"`

	rule   limiter.Rule
	app    *soul.App
	lim    *limiter.Limiter // the app's, shared by every policy and soul_auth
	issuer *token.Issuer    // the app's, when keyed by user
	logger *zap.Logger
	now    func() time.Time
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.soul_rate_limit",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision applies the defaults and takes the shared limiter of the `soul`
// app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := metrics.Register(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	if h.Policy == "" {
		h.Policy = DefaultPolicy
	}
	if h.Limit == 0 {
		h.Limit = DefaultLimit
	}
	if h.Window == 0 {
		h.Window = caddy.Duration(DefaultWindow)
	}
	if h.Key == "" {
		h.Key = KeyUser
	}
	if err := h.Validate(); err != nil {
		return err
	}
	app, err := soul.FromContext(ctx)
	if err != nil {
		return err
	}
	h.app = app
	if h.Key == KeyUser {
		// Verifying the signature is enough to key on the subject: a
		// forged token cannot name another user, and the session check
		// (a database lookup) is the protected handler's business.
		h.issuer = app.Issuer()
	}
	lim := app.Limiter()
	if h.Key == KeyUser {
		// So that deleting an account forgets this policy's entries even
		// before any request of this process has used it.
		if err := lim.Register(h.rule); err != nil {
			return err
		}
	}
	h.lim = lim
	h.now = time.Now
	// The log names the storage in use, so an operator whose Redis is
	// unreachable at start reads it here rather than in the first 429s.
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	storage := lim.Probe(pctx)
	cancel()
	h.logger.Info("rate limit policy ready",
		zap.String("policy", h.Policy),
		zap.Int("limit", h.Limit),
		zap.Duration("window", time.Duration(h.Window)),
		zap.String("key", h.Key),
		zap.String("storage", describeStorage(app.Settings().RedisURL, storage)))
	return nil
}

// Validate checks the policy; the limiter's own rules apply to the name.
func (h *Handler) Validate() error {
	h.rule = limiter.Rule{Name: h.Policy, Limit: h.Limit, Window: time.Duration(h.Window)}
	if h.Key != KeyUser && h.Key != KeyIP {
		return fmt.Errorf("soul_rate_limit %s: key %q: want %q or %q", h.Policy, h.Key, KeyUser, KeyIP)
	}
	if h.Window < caddy.Duration(time.Second) {
		return fmt.Errorf("soul_rate_limit %s: window %s: want 1s or more", h.Policy, time.Duration(h.Window))
	}
	if h.Limit < 1 {
		return fmt.Errorf("soul_rate_limit %s: limit %d: want 1 or more", h.Policy, h.Limit)
	}
	// Check the name the way the limiter will, at load time rather than on
	// the first request.
	for _, c := range h.Policy {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return fmt.Errorf("soul_rate_limit: policy name %q: only letters, digits, '_', '-' and '.'", h.Policy)
		}
	}
	return nil
}

// ServeHTTP counts the request against its subject and either passes it on
// with the rate-limit fields set, or answers 429 rate_limited with the same
// fields and Retry-After.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	subject, session, r := h.subject(r)
	var (
		d   limiter.Decision
		err error
	)
	if session != "" {
		// The session's marker rides along, so the authenticator after
		// this handler need not ask the database whether it is open.
		var m limiter.Marker
		d, m, err = h.lim.AllowMarked(r.Context(), h.rule, subject, auth.SessionMarker(session))
		if err == nil {
			r = r.WithContext(auth.WithSessionMarker(r.Context(), session, m))
		}
	} else {
		d, err = h.lim.Allow(r.Context(), h.rule, subject)
	}
	if err != nil {
		// Only a request the client abandoned gets here: a failing Redis
		// is answered from memory by the limiter. Still the 503 every
		// other one is, with Retry-After.
		return httpapi.Unavailable(err)
	}
	metrics.RateLimitDecisions.WithLabelValues(h.Policy, d.Storage, metrics.Decision(d.Allowed)).Inc()
	now := h.now()
	if !d.Allowed {
		e := problem.New(http.StatusTooManyRequests, "rate_limited", "Too many requests; retry later.")
		e.RetryAfter = d.RetryAfter
		e.Header = ratelimitheaders.Header(h.Policy, d, now)
		return httpapi.Problem(e)
	}
	ratelimitheaders.Set(w.Header(), h.Policy, d, now)
	return next.ServeHTTP(w, r)
}

// subject is what the request is counted against, and the session of its
// verified access token (empty without one). The prefixes keep a user id
// and an IP address from ever sharing a counter. A token it verifies is
// remembered in the returned request's context, so the handlers after it
// do not verify it again.
func (h *Handler) subject(r *http.Request) (string, string, *http.Request) {
	if h.issuer != nil {
		if raw, ok := httpapi.Bearer(r); ok {
			c, ok := token.VerifiedIn(r.Context(), raw)
			if !ok {
				if v, err := h.issuer.Verify(raw); err == nil {
					c, ok = v, true
					r = r.WithContext(token.WithVerified(r.Context(), raw, c))
				}
			}
			if ok && c.UserID != "" {
				return auth.UserSubject(c.UserID), c.SessionID, r
			}
		}
	}
	return "ip:" + h.app.ClientAddr(r), "", r
}

// describeStorage names where the counters live, for the startup log: the
// Redis host (never its credentials) or process memory, saying so when
// memory stands in for a Redis that did not answer.
func describeStorage(redisURL, storage string) string {
	if redisURL == "" {
		return "memory (per instance)"
	}
	host := "redis"
	if u, err := url.Parse(redisURL); err == nil && u.Host != "" {
		host = "redis " + u.Host
	}
	if storage != limiter.StorageRedis {
		return "memory (" + host + " unreachable, falling back)"
	}
	return host
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
