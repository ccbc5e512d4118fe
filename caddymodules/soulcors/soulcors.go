// Package soulcors answers CORS for browser clients of the API: preflights
// from allowed origins get a 204 with the methods and headers the API takes,
// and every answer to an allowed origin (errors included) names it in
// Access-Control-Allow-Origin so the browser lets the page read it.
package soulcors

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/soulapp/soul/caddymodules/soul"
	"github.com/soulapp/soul/internal/httpapi"
	"github.com/soulapp/soul/internal/problem"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// What a preflight from an allowed origin is told, and which answer headers
// a page may read (rate-limit state, where a created mood lives, the next
// page of a list).
const (
	AllowMethods  = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
	AllowHeaders  = "Authorization, Content-Type, Idempotency-Key, X-Platform, X-App-Version"
	ExposeHeaders = "RateLimit, RateLimit-Policy, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, Location, Link"
)

// DefaultMaxAge is how long a browser may reuse a preflight answer.
const DefaultMaxAge = 10 * time.Minute

// Handler answers CORS. Origins match exactly (scheme, host and port; case
// and a default port do not matter). A request from any other origin gets
// no CORS headers: its preflight is refused with 403 problem+json
// (cors_origin_not_allowed) and its other requests go on unchanged, so the
// browser keeps the answer from the page. Every answer carries
// `Vary: Origin`, because what it says depends on that header.
//
// Put it in the site and in handle_errors: in the error routes it only adds
// the headers to the error answer.
type Handler struct {
	// Allowed origins such as https://app.soulapp.app: CORS_ORIGINS, a
	// comma-separated list, through the Caddyfile. Required unless
	// DEV_MODE=true. `*` allows every origin and is refused unless
	// DEV_MODE=true, and together with allow_credentials. Placeholders are
	// replaced at provision; a value may hold a comma-separated list.
	Origins []string `json:"origins,omitempty"`
	// Send Access-Control-Allow-Credentials: true (cookies or HTTP auth sent
	// by the browser). Off by default: the API takes bearer tokens.
	AllowCredentials bool `json:"allow_credentials,omitempty"`
	// Access-Control-Max-Age of preflight answers. Default 10m.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	allowed map[string]struct{}
	any     bool
	maxAge  string
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.soul_cors",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves the origins
// and refuses a wildcard outside DEV_MODE or with credentials.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	app, err := soul.FromContext(ctx)
	if err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	var origins []string
	for _, o := range h.Origins {
		for _, part := range strings.Split(repl.ReplaceAll(o, ""), ",") {
			if part = strings.TrimSpace(part); part != "" {
				origins = append(origins, part)
			}
		}
	}
	if len(origins) == 0 && !app.DevMode() {
		return errors.New("invalid configuration: CORS_ORIGINS is required when DEV_MODE=false")
	}
	set, err := compileOrigins(origins, app.DevMode(), h.AllowCredentials)
	if err != nil {
		return fmt.Errorf("soul_cors: %w", err)
	}
	h.allowed, h.any = set.exact, set.any
	if h.MaxAge < 0 {
		return errors.New("soul_cors: max_age may not be negative")
	}
	if h.MaxAge == 0 {
		h.MaxAge = caddy.Duration(DefaultMaxAge)
	}
	h.maxAge = strconv.Itoa(int(time.Duration(h.MaxAge) / time.Second))
	if h.any {
		h.logger.Warn("CORS allows every origin (DEV_MODE only)")
	} else if len(h.allowed) == 0 {
		h.logger.Info("CORS allows no origin: set CORS_ORIGINS for browser clients")
	}
	return nil
}

// originSet is a compiled list of allowed origins.
type originSet struct {
	exact map[string]struct{}
	any   bool
}

// compileOrigins checks and normalises configured origins.
func compileOrigins(origins []string, devMode, credentials bool) (originSet, error) {
	set := originSet{exact: make(map[string]struct{}, len(origins))}
	for _, o := range origins {
		if o == "*" {
			if !devMode {
				return set, errors.New("the origin * is allowed only when DEV_MODE=true; list the origins in CORS_ORIGINS")
			}
			if credentials {
				return set, errors.New("the origin * cannot be combined with allow_credentials; list the origins")
			}
			set.any = true
			continue
		}
		n, err := normalizeOrigin(o)
		if err != nil {
			return set, err
		}
		set.exact[n] = struct{}{}
	}
	return set, nil
}

// normalizeOrigin turns a configured origin into the form browsers send:
// lower-case scheme and host, no default port, no trailing slash.
func normalizeOrigin(o string) (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("bad CORS origin %q: %s (want scheme://host[:port], e.g. https://app.soulapp.app)", o, why)
	}
	if strings.Contains(o, "*") {
		return "", bad("wildcards are not supported; only a lone * in DEV_MODE")
	}
	u, err := url.Parse(o)
	if err != nil {
		return "", bad(err.Error())
	}
	switch {
	case u.Scheme == "" || u.Host == "":
		return "", bad("no scheme or host")
	case u.User != nil, u.RawQuery != "", u.Fragment != "", u.Path != "" && u.Path != "/":
		return "", bad("an origin has no path, query, fragment or user")
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// allows reports whether a request's Origin header is on the list.
func (h *Handler) allows(origin string) bool {
	if h.any {
		return true
	}
	_, ok := h.allowed[strings.ToLower(origin)]
	return ok
}

// ServeHTTP answers preflights itself and adds CORS headers to everything
// else before the rest of the route runs, so they are on the header map
// when a later handler fails and the error routes write the answer.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	hdr := w.Header()
	addVary(hdr, "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" {
		return next.ServeHTTP(w, r)
	}
	allowed := h.allows(origin)
	inErrorRoute := r.Context().Value(caddyhttp.ErrorCtxKey) != nil
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""

	if preflight && !inErrorRoute {
		if !allowed {
			if h.logger.Core().Enabled(zap.DebugLevel) {
				h.logger.Debug("CORS preflight from an origin not allowed", zap.String("origin", origin))
			}
			return httpapi.Problem(problem.New(http.StatusForbidden,
				"cors_origin_not_allowed", "This origin may not call the API from a browser."))
		}
		h.setAllowOrigin(hdr, origin)
		hdr.Set("Access-Control-Allow-Methods", AllowMethods)
		hdr.Set("Access-Control-Allow-Headers", AllowHeaders)
		hdr.Set("Access-Control-Max-Age", h.maxAge)
		hdr.Del("Content-Type")
		hdr.Del("Content-Length")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if allowed {
		h.setAllowOrigin(hdr, origin)
		hdr.Set("Access-Control-Expose-Headers", ExposeHeaders)
	}
	return next.ServeHTTP(w, r)
}

func (h *Handler) setAllowOrigin(hdr http.Header, origin string) {
	if h.any {
		hdr.Set("Access-Control-Allow-Origin", "*")
		return
	}
	hdr.Set("Access-Control-Allow-Origin", origin)
	if h.AllowCredentials {
		hdr.Set("Access-Control-Allow-Credentials", "true")
	}
}

// addVary adds field to Vary unless it is already named there (the handler
// runs again in the error routes).
func addVary(hdr http.Header, field string) {
	for _, v := range hdr.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, field) {
				return
			}
		}
	}
	hdr.Add("Vary", field)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
