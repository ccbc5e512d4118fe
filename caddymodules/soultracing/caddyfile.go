package soultracing

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("soul_tracing", parseCaddyfile)
	// Where Caddy's own tracing goes: first, so the span covers the rest.
	httpcaddyfile.RegisterDirectiveOrder("soul_tracing", httpcaddyfile.Before, "tracing")
}

// UnmarshalCaddyfile reads
//
//	soul_tracing {
//		span <name>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "span":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.Span = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var t Handler
	err := t.UnmarshalCaddyfile(h.Dispenser)
	return &t, err
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
