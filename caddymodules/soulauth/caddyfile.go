package soulauth

import (
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/soulapp/soul/internal/phone"

	"github.com/soulapp/soul/internal/caddyopt"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("soul_auth", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("soul_auth", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile sets up the handler:
//
//	soul_auth {
//		otp_provider <name> { ... }
//		test_numbers [<+number=code,...>]
//		test_numbers_valid_until [<rfc3339>]
//		refresh_token_expire_days [<1-365>]
//		allowed_countries [<CC,...> ...]
//		send_budget_hourly [<count>]
//		send_budget_hourly_per_country [<count>]
//		limit <rule> <count> <window>
//	}
//
// otp_provider names a soul.otp_providers module (twilio_verify, local)
// and its block; without it, codes are local (DEV_MODE only). limit
// overrides one sign-in rate limit (otp_request, otp_send, otp_send_day,
// otp_verify, otp_attempts, refresh, otp_budget, otp_budget_country); it
// may repeat. allowed_countries takes ISO 3166-1 alpha-2 codes, separated
// by commas or given as several arguments, checked here. A setting without a
// value keeps its default, so `refresh_token_expire_days
// {$REFRESH_TOKEN_EXPIRE_DAYS}` may expand to nothing.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "otp_provider":
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			unm, err := caddyfile.UnmarshalModule(d, "soul.otp_providers."+name)
			if err != nil {
				return err
			}
			h.OTPProviderRaw = caddyconfig.JSONModuleObject(unm, "provider", name, nil)
		case "test_numbers":
			v, err := caddyopt.Optional(d)
			if err != nil {
				return err
			}
			h.TestNumbers = v
		case "test_numbers_valid_until":
			v, err := caddyopt.Optional(d)
			if err != nil {
				return err
			}
			if v == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return d.Errf("OTP_TEST_NUMBERS_VALID_UNTIL must be an RFC 3339 time such as 2027-01-31T00:00:00Z, not %q", v)
			}
			h.TestNumbersValidUntil = &t
		case "refresh_token_expire_days":
			v, err := caddyopt.Optional(d)
			if err != nil {
				return err
			}
			if v == "" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 365 {
				return d.Errf("REFRESH_TOKEN_EXPIRE_DAYS must be a whole number from 1 to 365, not %q", v)
			}
			h.RefreshTokenExpireDays = n
		case "allowed_countries":
			countries, err := phone.ParseCountries(strings.Join(d.RemainingArgs(), ","))
			if err != nil {
				return d.Errf("OTP_ALLOWED_COUNTRIES: %v", err)
			}
			h.AllowedCountries = countries
		case "send_budget_hourly", "send_budget_hourly_per_country":
			name := d.Val()
			v, err := caddyopt.Optional(d)
			if err != nil {
				return err
			}
			if v == "" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("%s must be a whole number of 1 or more, not %q", strings.ToUpper("OTP_"+name), v)
			}
			if name == "send_budget_hourly" {
				h.SendBudgetHourly = n
			} else {
				h.SendBudgetHourlyPerCountry = n
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
