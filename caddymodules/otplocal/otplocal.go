// Package otplocal is the `soul.otp_providers.local` code provider: codes
// made and kept in the database (otp_challenges) and handed back in the
// answer's preview_code instead of an SMS. DEV_MODE only; soul_auth uses it
// when no other provider is configured there.
package otplocal

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/soulapp/soul/caddymodules/soul"
	"github.com/soulapp/soul/internal/auth"
)

func init() {
	caddy.RegisterModule(Provider{})
}

// Provider is the local code provider. Its codes are checked inside the
// sign-in transaction (auth.TxChecker).
type Provider struct {
	*auth.LocalProvider
}

// CaddyModule returns the Caddy module information.
func (Provider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "soul.otp_providers.local",
		New: func() caddy.Module { return new(Provider) },
	}
}

// Provision builds the provider on the `soul` app's database, with its code
// key derived from SECRET_KEY.
func (p *Provider) Provision(ctx caddy.Context) error {
	app, err := soul.FromContext(ctx)
	if err != nil {
		return err
	}
	if !app.DevMode() {
		return errors.New("soul_auth: local OTP codes need DEV_MODE=true; configure Twilio Verify")
	}
	key, err := app.DeriveKey(auth.LabelOTP)
	if err != nil {
		return err
	}
	p.LocalProvider, err = auth.NewLocalProvider(app.DB(), key, nil)
	return err
}

// UnmarshalCaddyfile reads `otp_provider local`; it takes no options.
func (p *Provider) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("unrecognized subdirective %q", d.Val())
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Provider)(nil)
	_ caddyfile.Unmarshaler = (*Provider)(nil)
	_ auth.Provider         = (*Provider)(nil)
	_ auth.TxChecker        = (*Provider)(nil)
)
