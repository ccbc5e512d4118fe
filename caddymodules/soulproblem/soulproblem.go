// Package soulproblem renders every error the binary answers (ours, Caddy's
// own 404 and 413, the shield's 429) as RFC 9457 problem+json. It is
// the one error renderer: put it in handle_errors.
package soulproblem

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/soulapp/soul/internal/problem"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler writes the error of the request being handled as problem+json.
// Used outside handle_errors it answers 404, so a stray use fails visibly.
type Handler struct{}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.soul_problem",
		New: func() caddy.Module { return new(Handler) },
	}
}

// ServeHTTP renders the error stored by the server in the request context.
func (Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	problem.Write(w, r, Resolve(r))
	return nil
}

// Resolve returns the API error for the request's handler error.
func Resolve(r *http.Request) *problem.Error {
	err, _ := r.Context().Value(caddyhttp.ErrorCtxKey).(error)
	if err == nil {
		return problem.From(nil, http.StatusNotFound)
	}
	status := http.StatusInternalServerError
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode != 0 {
		status = he.StatusCode
	}
	return problem.From(err, status)
}

// Interface guard
var _ caddyhttp.MiddlewareHandler = (*Handler)(nil)
