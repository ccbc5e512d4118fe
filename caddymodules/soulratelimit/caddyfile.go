package soulratelimit

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("soul_rate_limit", parseCaddyfile)
	// After the shield, soul_shield (ordered before basic_auth), and before
	// the handlers that answer.
	httpcaddyfile.RegisterDirectiveOrder("soul_rate_limit", httpcaddyfile.After, "basic_auth")
}

// UnmarshalCaddyfile sets up the handler:
//
//	soul_rate_limit [<matcher>] [<policy>] {
//		limit  <count>
//		window <duration>
//		key    user|ip
//	}
//
// The policy name defaults to "default"; unset fields take the
// default policy (100 per 1m, keyed by user).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		h.Policy = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "limit":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 {
				return d.Errf("bad limit %q: want a whole number of 1 or more", d.Val())
			}
			h.Limit = n
		case "window":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("bad window %q: want a positive duration", d.Val())
			}
			h.Window = caddy.Duration(dur)
		case "key":
			if !d.NextArg() {
				return d.ArgErr()
			}
			if d.Val() != KeyUser && d.Val() != KeyIP {
				return d.Errf("bad key %q: want %s or %s", d.Val(), KeyUser, KeyIP)
			}
			h.Key = d.Val()
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
	var m Handler
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return &m, err
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
