// Package soulsentry is the `soul_sentry` handler: it reports the panics
// and 5xx errors of the handlers after it to Sentry (through the soul app's
// reporter, when SENTRY_DSN is set) and turns a panic into a 500 problem
// answer instead of a dropped connection. Place it first in the site, so
// it wraps every other handler.
package soulsentry

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/soulapp/soul/caddymodules/soul"
	"github.com/soulapp/soul/internal/errorreport"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler reports failures of the rest of the route.
type Handler struct {
	reporter *errorreport.Reporter
	logger   *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.soul_sentry",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the reporter; nil when error reports are off.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	app, err := soul.FromContext(ctx)
	if err != nil {
		return err
	}
	h.reporter = app.Reporter()
	return nil
}

// ServeHTTP runs the rest of the route and reports what failed.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (err error) {
	defer func() {
		rec := recover()
		if rec == nil {
			return
		}
		if rec == http.ErrAbortHandler { //nolint:errorlint // the sentinel is compared, as net/http does
			panic(rec)
		}
		// The panic value stays out of the returned error, which Caddy
		// logs and may render; it is logged here scrubbed, with the stack.
		h.logger.Error("handler panicked",
			zap.String("method", r.Method),
			zap.String("path", r.URL.Path),
			zap.String("panic", errorreport.ScrubText(fmt.Sprint(rec))),
			zap.Stack("stack"))
		if h.reporter != nil {
			h.reporter.Panic(r, rec)
		}
		err = caddyhttp.Error(http.StatusInternalServerError, errors.New("internal error"))
	}()

	err = next.ServeHTTP(w, r)
	if err != nil && h.reporter != nil {
		status, id := http.StatusInternalServerError, ""
		var he caddyhttp.HandlerError
		if errors.As(err, &he) {
			id = he.ID
			if he.StatusCode != 0 {
				status = he.StatusCode
			}
		}
		if status >= 500 {
			h.reporter.Error(r, status, id, err)
		}
	}
	return err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
