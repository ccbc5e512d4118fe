package soulshield

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("soul_shield", parseCaddyfile)
	// First of the limits: after CORS (ordered after header) answers
	// preflights, before soul_rate_limit (after basic_auth) and the
	// handlers that answer.
	httpcaddyfile.RegisterDirectiveOrder("soul_shield", httpcaddyfile.Before, "basic_auth")
}

// UnmarshalCaddyfile sets up the handler:
//
//	soul_shield [<matcher>] {
//		events <count>
//		window <duration>
//	}
//
// Unset fields take the defaults: 300 requests per client per 10s.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "events":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 {
				return d.Errf("bad events %q: want a whole number of 1 or more", d.Val())
			}
			h.Events = n
		case "window":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("bad window %q: want a positive duration", d.Val())
			}
			h.Window = caddy.Duration(dur)
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
