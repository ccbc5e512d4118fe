package soulcors

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("soul_cors", parseCaddyfile)
	// Right after header: the security headers are on the preflight answer
	// too, and preflights are answered before rate limits (soul_shield sits
	// before basic_auth) and before any route that needs a token.
	httpcaddyfile.RegisterDirectiveOrder("soul_cors", httpcaddyfile.After, "header")
}

// UnmarshalCaddyfile sets up the handler:
//
//	soul_cors [<matcher>] {
//		origins           <origin...>
//		allow_credentials
//		max_age           <duration>
//	}
//
// Without origins it allows none (DEV_MODE only). Origins go in the block
// only: a first argument of `*` would be read as a request matcher.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "origins":
			// No value (an unset {$CORS_ORIGINS}) adds none.
			h.Origins = append(h.Origins, d.RemainingArgs()...)
		case "allow_credentials":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.AllowCredentials = true
		case "max_age":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur < 0 {
				return d.Errf("bad max_age %q: want a duration such as 10m", d.Val())
			}
			h.MaxAge = caddy.Duration(dur)
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
	var c Handler
	err := c.UnmarshalCaddyfile(h.Dispenser)
	return &c, err
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
