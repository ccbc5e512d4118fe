package soulproblem

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("soul_problem", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("soul_problem", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile sets up the handler; it takes no arguments:
//
//	soul_problem
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
	var p Handler
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return p, err
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
