package soul

import (
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("soul", parseGlobalOption)
}

// parseGlobalOption sets up the `soul` app from the global options block:
//
//	{
//		soul {
//			dev_mode                     <bool>
//			secret_key                   <key>
//			secret_key_previous          <key>
//			database_url                 <postgres-url>
//			sqlite_path                  <path>
//			database_connect_timeout     <duration>
//			database_max_connections     <1-1000>
//			migrate_on_start             <bool>
//			redis_url                    <redis-url>
//			rate_limit_redis_timeout     <duration>
//			rate_limit_memory_max_keys   <1000-10000000>
//			rate_limit_ipv6_prefix       <32-128>
//			cors_origins                 <origin[,origin...]>
//			access_token_expire_minutes  <5-60>
//			refresh_token_expire_days    <1-365>
//			twilio_account_sid           <sid>
//			twilio_auth_token            <token>
//			twilio_verify_service_sid    <sid>
//			twilio_verify_base_url       <url>
//			otp_test_numbers             <+number=code,...>
//			otp_test_numbers_valid_until <rfc3339>
//			sentry_dsn                   <dsn>
//			sentry_environment           <name>
//			retention_sweep_interval     <duration|0>
//		}
//	}
//
// Use runtime placeholders ({env.SECRET_KEY}) rather than {$SECRET_KEY} for
// secrets, so they stay out of the adapted config. A subdirective left out
// reads the environment variable of the same name in upper case.
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{
		Name:  "soul",
		Value: caddyconfig.JSON(app, nil),
	}, nil
}

// UnmarshalCaddyfile reads the `soul` global option; see parseGlobalOption.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	fields := map[string]*string{
		"dev_mode":                     &a.DevMode,
		"secret_key":                   &a.SecretKey,
		"secret_key_previous":          &a.SecretKeyPrevious,
		"database_url":                 &a.DatabaseURL,
		"sqlite_path":                  &a.SQLitePath,
		"database_connect_timeout":     &a.DatabaseConnectTimeout,
		"database_max_connections":     &a.DatabaseMaxConnections,
		"migrate_on_start":             &a.MigrateOnStart,
		"redis_url":                    &a.RedisURL,
		"rate_limit_redis_timeout":     &a.RateLimitRedisTimeout,
		"rate_limit_memory_max_keys":   &a.RateLimitMemoryMaxKeys,
		"rate_limit_ipv6_prefix":       &a.RateLimitIPv6Prefix,
		"cors_origins":                 &a.CORSOrigins,
		"access_token_expire_minutes":  &a.AccessTokenExpireMinutes,
		"refresh_token_expire_days":    &a.RefreshTokenExpireDays,
		"twilio_account_sid":           &a.TwilioAccountSID,
		"twilio_auth_token":            &a.TwilioAuthToken,
		"twilio_verify_service_sid":    &a.TwilioVerifyServiceSID,
		"twilio_verify_base_url":       &a.TwilioVerifyBaseURL,
		"otp_test_numbers":             &a.OTPTestNumbers,
		"otp_test_numbers_valid_until": &a.OTPTestNumbersValidUntil,
		"sentry_dsn":                   &a.SentryDSN,
		"sentry_environment":           &a.SentryEnvironment,
		"retention_sweep_interval":     &a.RetentionSweepInterval,
	}
	d.Next() // consume option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		name := d.Val()
		field, ok := fields[name]
		if !ok {
			return d.Errf("unrecognized subdirective %q", name)
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		*field = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*App)(nil)
