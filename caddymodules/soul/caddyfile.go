package soul

import (
	"errors"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/soulapp/soul/internal/caddyopt"
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
//			database_prepared_statements [<bool>]
//			migrate_on_start             [<bool>]
//			redis_url                    [<redis-url>]
//			rate_limit_redis_timeout     [<duration>]
//			rate_limit_memory_max_keys   [<1000-10000000>]
//			rate_limit_ipv6_prefix       [<32-128>]
//			access_token_expire_minutes  [<5-60>]
//			sentry_dsn                   [<dsn>]
//			sentry_environment           [<name>]
//			retention_sweep_interval     [<duration|0>]
//			sync_tombstone_days          [<1-3650>]
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
		v, err := caddyopt.Optional(d)
		if err != nil {
			return err
		}
		if err := a.set(name, v); errors.Is(err, errUnrecognized) {
			return d.Errf("unrecognized subdirective %q", name)
		} else if err != nil {
			return d.Errf("%v", err)
		}
	}
	return nil
}

// set applies one subdirective; an empty value keeps the default. A value
// that does not parse or is out of range is refused here, in the words
// Provision would use (rules), so the operator reads one message either way.
func (a *App) set(name, v string) error {
	strs := map[string]*string{
		"secret_key":          &a.SecretKey,
		"secret_key_previous": &a.SecretKeyPrevious,
		"database_url":        &a.DatabaseURL,
		"sqlite_path":         &a.SQLitePath,
		"redis_url":           &a.RedisURL,
		"sentry_dsn":          &a.SentryDSN,
		"sentry_environment":  &a.SentryEnvironment,
	}
	if p, ok := strs[name]; ok {
		*p = v
		return nil
	}
	if _, ok := rules[name]; !ok {
		return errUnrecognized
	}
	if v == "" {
		return nil
	}
	bad := errors.New(rules[name])
	ints := map[string]*int{
		"database_max_connections":    &a.DatabaseMaxConnections,
		"rate_limit_memory_max_keys":  &a.RateLimitMemoryMaxKeys,
		"rate_limit_ipv6_prefix":      &a.RateLimitIPv6Prefix,
		"access_token_expire_minutes": &a.AccessTokenExpireMinutes,
		"sync_tombstone_days":         &a.SyncTombstoneDays,
	}
	durations := map[string]*caddy.Duration{
		"database_connect_timeout": &a.DatabaseConnectTimeout,
		"rate_limit_redis_timeout": &a.RateLimitRedisTimeout,
	}
	switch p := ints[name]; {
	case p != nil:
		n, err := strconv.Atoi(v)
		if err != nil || n == 0 {
			return bad
		}
		*p = n
	case durations[name] != nil:
		d, err := caddy.ParseDuration(v)
		if err != nil || d == 0 {
			return bad
		}
		*durations[name] = caddy.Duration(d)
	case name == "dev_mode" || name == "migrate_on_start" || name == "database_prepared_statements":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return bad
		}
		switch name {
		case "dev_mode":
			a.Dev = b
		case "migrate_on_start":
			a.MigrateOnStart = &b
		default:
			a.DatabasePreparedStatements = &b
		}
	case name == "retention_sweep_interval":
		d, err := caddy.ParseDuration(v)
		if err != nil {
			return bad
		}
		cd := caddy.Duration(d)
		a.RetentionSweepInterval = &cd
	}
	// The ranges: the same checks as Provision's.
	return a.checkRange(name)
}

// errUnrecognized is set's answer to a name that is no subdirective.
var errUnrecognized = errors.New("unrecognized subdirective")

// Interface guard
var _ caddyfile.Unmarshaler = (*App)(nil)
