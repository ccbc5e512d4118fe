package soulsentry

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("soul_sentry", parseCaddyfile)
	// Right inside the request's span, around every other handler.
	httpcaddyfile.RegisterDirectiveOrder("soul_sentry", httpcaddyfile.After, "tracing")
}

// UnmarshalCaddyfile reads the directive, which takes no arguments:
//
//	soul_sentry
//
// The DSN and environment are the soul app's (SENTRY_DSN,
// SENTRY_ENVIRONMENT).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		return d.Errf("unrecognized subdirective %q", d.Val())
	}
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var s Handler
	err := s.UnmarshalCaddyfile(h.Dispenser)
	return &s, err
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
