package soul

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
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
//			dev_mode                     [<bool>]
//			secret_key                   [<key>]
//			secret_key_previous          [<key>]
//			database_url                 [<postgres-url>]
//			sqlite_path                  [<path>]
//			database_connect_timeout     [<duration>]
//			database_max_connections     [<1-1000>]
//			migrate_on_start             [<bool>]
//			redis_url                    [<redis-url>]
//			rate_limit_redis_timeout     [<duration>]
//			rate_limit_memory_max_keys   [<1000-10000000>]
//			rate_limit_ipv6_prefix       [<32-128>]
//			access_token_expire_minutes  [<5-60>]
//			sentry_dsn                   [<dsn>]
//			sentry_environment           [<name>]
//			retention_sweep_interval     [<duration|0>]
//		}
//	}
//
// Every value is optional so that a line such as `dev_mode {$DEV_MODE}`
// with the variable unset keeps the default. Non-secret values are parsed
// here, when the Caddyfile is read; use runtime placeholders
// ({env.SECRET_KEY}) for the secrets and the URLs that carry passwords,
// so they stay out of the adapted config.
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
	d.Next() // consume option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		name := d.Val()
		var v string
		if d.NextArg() {
			v = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		}
		if err := a.set(name, v); err != nil {
			return d.Errf("soul: %s %q: %v", name, v, err)
		}
	}
	return nil
}

// set applies one subdirective; an empty value keeps the default.
func (a *App) set(name, v string) error {
	strings := map[string]*string{
		"secret_key":          &a.SecretKey,
		"secret_key_previous": &a.SecretKeyPrevious,
		"database_url":        &a.DatabaseURL,
		"sqlite_path":         &a.SQLitePath,
		"redis_url":           &a.RedisURL,
		"sentry_dsn":          &a.SentryDSN,
		"sentry_environment":  &a.SentryEnvironment,
	}
	ints := map[string]*int{
		"database_max_connections":    &a.DatabaseMaxConnections,
		"rate_limit_memory_max_keys":  &a.RateLimitMemoryMaxKeys,
		"rate_limit_ipv6_prefix":      &a.RateLimitIPv6Prefix,
		"access_token_expire_minutes": &a.AccessTokenExpireMinutes,
	}
	durations := map[string]*caddy.Duration{
		"database_connect_timeout": &a.DatabaseConnectTimeout,
		"rate_limit_redis_timeout": &a.RateLimitRedisTimeout,
	}
	if p, ok := strings[name]; ok {
		*p = v
		return nil
	}
	if p, ok := ints[name]; ok {
		if v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return errNotWhole
		}
		*p = n
		return nil
	}
	if p, ok := durations[name]; ok {
		if v == "" {
			return nil
		}
		d, err := caddy.ParseDuration(v)
		if err != nil {
			return errNotDuration
		}
		*p = caddy.Duration(d)
		return nil
	}
	switch name {
	case "dev_mode", "migrate_on_start":
		if v == "" {
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errNotBool
		}
		if name == "dev_mode" {
			a.Dev = b
		} else {
			a.MigrateOnStart = &b
		}
		return nil
	case "retention_sweep_interval":
		if v == "" {
			return nil
		}
		d, err := caddy.ParseDuration(v)
		if err != nil {
			return errNotDuration
		}
		cd := caddy.Duration(d)
		a.RetentionSweepInterval = &cd
		return nil
	}
	return errUnknown
}

type parseError string

func (e parseError) Error() string { return string(e) }

const (
	errNotWhole    = parseError("want a whole number")
	errNotDuration = parseError("want a duration such as 30s or 10m")
	errNotBool     = parseError("want true or false")
	errUnknown     = parseError("unrecognized subdirective")
)

// Interface guard
var _ caddyfile.Unmarshaler = (*App)(nil)
