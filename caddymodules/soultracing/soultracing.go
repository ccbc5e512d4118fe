// Package soultracing is the `soul_tracing` handler: Caddy's own `tracing`
// handler when traces are configured (the standard OTEL_* variables), and
// nothing at all when they are not. Caddy's handler, even with sampling
// off, wraps every request and its response writer, extracts and injects
// the trace headers and starts a span that is then dropped: about fifty
// allocations and a tenth of a plain request's CPU, for no trace.
package soultracing

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler starts the request's span when tracing is on.
type Handler struct {
	// Span names the request's span, as Caddy's tracing handler's "span".
	Span string `json:"span,omitempty"`

	inner caddyhttp.MiddlewareHandler
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.soul_tracing",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Enabled reports whether traces are configured. The soul app turns the
// exporter off ("none") at start unless an OTEL_* variable names an
// exporter or an endpoint.
func Enabled() bool {
	return os.Getenv("OTEL_TRACES_EXPORTER") != "none"
}

// Provision loads Caddy's tracing handler when tracing is on.
func (h *Handler) Provision(ctx caddy.Context) error {
	if !Enabled() {
		ctx.Logger().Debug("tracing off: no OTEL_* exporter or endpoint set")
		return nil
	}
	cfg, err := json.Marshal(map[string]string{"span": h.Span})
	if err != nil {
		return err
	}
	mod, err := ctx.LoadModuleByID("http.handlers.tracing", cfg)
	if err != nil {
		return fmt.Errorf("soul_tracing: %w", err)
	}
	inner, ok := mod.(caddyhttp.MiddlewareHandler)
	if !ok {
		return fmt.Errorf("soul_tracing: http.handlers.tracing is a %T, not a handler", mod)
	}
	h.inner = inner
	ctx.Logger().Info("tracing on", zap.String("span", h.Span))
	return nil
}

// ServeHTTP runs the request inside its span, or just runs it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.inner == nil {
		return next.ServeHTTP(w, r)
	}
	return h.inner.ServeHTTP(w, r, next)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
