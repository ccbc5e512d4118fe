// Package otptwilio is the `soul.otp_providers.twilio_verify` code
// provider: Twilio Verify sends the SMS and checks the code.
//
//	soul_auth {
//		otp_provider twilio_verify {
//			account_sid        {env.TWILIO_ACCOUNT_SID}
//			auth_token         {env.TWILIO_AUTH_TOKEN}
//			verify_service_sid {env.TWILIO_VERIFY_SERVICE_SID}
//			base_url           [<url>]
//			timeout            [<duration>]
//		}
//	}
//
// The credentials are runtime placeholders, resolved when the provider is
// provisioned, so they never appear in the adapted config.
package otptwilio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/twilio"

	"github.com/soulapp/soul/internal/caddyopt"
)

func init() {
	caddy.RegisterModule(Provider{})
}

// DefaultBaseURL is Twilio Verify's API.
const DefaultBaseURL = "https://verify.twilio.com"

// Provider sends and checks codes through Twilio Verify.
type Provider struct {
	// TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_VERIFY_SERVICE_SID.
	AccountSID string `json:"account_sid,omitempty"`
	AuthToken  string `json:"auth_token,omitempty"`
	ServiceSID string `json:"verify_service_sid,omitempty"`
	// Twilio Verify's base URL; tests point it at a local stand-in.
	// TWILIO_VERIFY_BASE_URL; default https://verify.twilio.com.
	BaseURL string `json:"base_url,omitempty"`
	// How long one call may take before the answer is 502
	// sms_provider_unavailable. TWILIO_TIMEOUT; default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	p          auth.TwilioProvider
	configured bool
}

// CaddyModule returns the Caddy module information.
func (Provider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "soul.otp_providers.twilio_verify",
		New: func() caddy.Module { return new(Provider) },
	}
}

// Provision resolves the credentials and checks the settings.
func (p *Provider) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	get := func(v string) string { return strings.TrimSpace(repl.ReplaceAll(v, "")) }
	c := &twilio.Client{
		AccountSID: get(p.AccountSID),
		AuthToken:  get(p.AuthToken),
		ServiceSID: get(p.ServiceSID),
		BaseURL:    get(p.BaseURL),
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("TWILIO_VERIFY_BASE_URL must be an http(s) URL such as %s", DefaultBaseURL)
	}
	if p.Timeout < 0 {
		return errors.New("TWILIO_TIMEOUT may not be negative")
	}
	timeout := time.Duration(p.Timeout)
	if timeout == 0 {
		timeout = twilio.DefaultTimeout
	}
	c.HTTP = &http.Client{Timeout: timeout}
	p.p = auth.TwilioProvider{Client: c}
	p.configured = c.AccountSID != "" && c.AuthToken != "" && c.ServiceSID != ""
	return nil
}

// Configured reports whether all three credentials are set. soul_auth
// refuses to start on an unconfigured provider outside DEV_MODE and falls
// back to local codes in it.
func (p *Provider) Configured() bool { return p.configured }

// Missing names what an unconfigured provider lacks, for the start error.
func (p *Provider) Missing() string {
	return "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_VERIFY_SERVICE_SID are required when DEV_MODE=false"
}

// Name implements auth.Provider.
func (p *Provider) Name() string { return p.p.Name() }

// Send implements auth.Provider.
func (p *Provider) Send(ctx context.Context, phone string) (string, error) {
	return p.p.Send(ctx, phone)
}

// Check implements auth.Provider.
func (p *Provider) Check(ctx context.Context, phone, code string) error {
	return p.p.Check(ctx, phone, code)
}

// UnmarshalCaddyfile reads the provider's block (see the package comment).
// A subdirective without a value keeps the default, so a line such as
// `base_url {$TWILIO_VERIFY_BASE_URL}` may expand to nothing.
func (p *Provider) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the provider's name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		name := d.Val()
		v, err := caddyopt.Optional(d)
		if err != nil {
			return err
		}
		switch name {
		case "account_sid":
			p.AccountSID = v
		case "auth_token":
			p.AuthToken = v
		case "verify_service_sid":
			p.ServiceSID = v
		case "base_url":
			p.BaseURL = v
		case "timeout":
			if v == "" {
				continue
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("bad timeout %q: want a positive duration such as 10s", v)
			}
			p.Timeout = caddy.Duration(dur)
		default:
			return d.Errf("unrecognized subdirective %q", name)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Provider)(nil)
	_ caddyfile.Unmarshaler = (*Provider)(nil)
	_ auth.Provider         = (*Provider)(nil)
)
