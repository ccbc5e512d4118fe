package soulauth

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("soul_auth", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("soul_auth", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile sets up the handler:
//
//	soul_auth {
//		twilio_timeout <duration>
//		limit <rule> <count> <window>
//	}
//
// limit overrides one sign-in rate limit (otp_request, otp_send,
// otp_send_day, otp_verify, otp_attempts, refresh); it may repeat.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "twilio_timeout":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("bad twilio_timeout %q: want a positive duration", d.Val())
			}
			h.TwilioTimeout = caddy.Duration(dur)
			if d.NextArg() {
				return d.ArgErr()
			}
		case "limit":
			args := d.RemainingArgs()
			if len(args) != 3 {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 {
				return d.Errf("bad limit count %q", args[1])
			}
			dur, err := caddy.ParseDuration(args[2])
			if err != nil || dur <= 0 {
				return d.Errf("bad limit window %q", args[2])
			}
			if h.Limits == nil {
				h.Limits = make(map[string]Limit)
			}
			h.Limits[args[0]] = Limit{Count: n, Window: caddy.Duration(dur)}
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
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
