// Package soul is the `soul` Caddy app: the one owner of what the SOUL
// API's handlers share — the database, the Redis client, the rate limiter,
// the access-token issuer and the authenticator — and of the settings they
// are built from.
//
// Handlers find it with FromContext in Provision and take what they need
// (app.DB(), app.Limiter(), app.Authenticator()…); they never build their
// own, and never start or stop it. The database, the Redis client and the
// limiter live in usage pools keyed by their settings, so a config reload
// with the same settings keeps the same connections and counts, and a
// changed one opens new ones while in-flight requests finish on the old.
package soul

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/rueidis"
	"github.com/uptrace/bun"
	"go.uber.org/zap"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/clientaddr"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/errorreport"
	"github.com/soulapp/soul/internal/httpapi"
	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/metrics"
	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/internal/retention"
	"github.com/soulapp/soul/internal/token"
	"github.com/soulapp/soul/internal/version"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `soul` app: the settings every handler shares, typed where
// the Caddyfile is read. The secrets (SECRET_KEY, SECRET_KEY_PREVIOUS) and
// the URLs that carry passwords (DATABASE_URL, REDIS_URL, SENTRY_DSN) are
// strings that may hold runtime placeholders such as {env.SECRET_KEY},
// resolved once when the app is provisioned, so they never appear in the
// adapted JSON or the admin API's config. Settings that belong to one
// handler live in that handler (CORS origins in soul_cors, the code
// provider and the test numbers in soul_auth).
type App struct {
	// Development conveniences (local OTP codes returned in answers, relaxed
	// checks). DEV_MODE; default false, so a forgotten variable is safe.
	Dev bool `json:"dev_mode,omitempty"`
	// Signs access tokens and keys every HMAC. SECRET_KEY; 32+ characters
	// in production.
	SecretKey string `json:"secret_key,omitempty"`
	// The key being rotated out: still verifies access tokens.
	// SECRET_KEY_PREVIOUS.
	SecretKeyPrevious string `json:"secret_key_previous,omitempty"`
	// Postgres URL; empty selects the embedded SQLite file. DATABASE_URL.
	DatabaseURL string `json:"database_url,omitempty"`
	// The embedded database file. SQLITE_PATH; default ./data/soul.db.
	SQLitePath string `json:"sqlite_path,omitempty"`
	// How long to wait for the database at start. DATABASE_CONNECT_TIMEOUT;
	// default 30s.
	DatabaseConnectTimeout caddy.Duration `json:"database_connect_timeout,omitempty"`
	// The most Postgres connections this process opens, 1–1000.
	// DATABASE_MAX_CONNECTIONS; default 20.
	DatabaseMaxConnections int `json:"database_max_connections,omitempty"`
	// Send the hot queries as statements prepared once per connection;
	// false sends them as unnamed statements, for PgBouncer before 1.21 in
	// transaction pooling mode (see database.StatementMode).
	// DATABASE_PREPARED_STATEMENTS; default true.
	DatabasePreparedStatements *bool `json:"database_prepared_statements,omitempty"`
	// Apply pending migrations at start. MIGRATE_ON_START; default true.
	MigrateOnStart *bool `json:"migrate_on_start,omitempty"`
	// Redis URL (redis:// or rediss://); empty keeps limits in memory.
	// REDIS_URL; required in production.
	RedisURL string `json:"redis_url,omitempty"`
	// How long a rate-limit check waits for Redis before it answers from
	// per-instance memory instead, 10ms–10s. RATE_LIMIT_REDIS_TIMEOUT;
	// default 200ms.
	RateLimitRedisTimeout caddy.Duration `json:"rate_limit_redis_timeout,omitempty"`
	// The most keys the in-memory rate-limit store holds (every limit in
	// embedded mode, the fallback while Redis is down), 1000–10000000.
	// RATE_LIMIT_MEMORY_MAX_KEYS; default 100000.
	RateLimitMemoryMaxKeys int `json:"rate_limit_memory_max_keys,omitempty"`
	// How many leading bits of an IPv6 client address name the client for
	// the shield and the per-IP limits, 32–128 (IPv4 addresses are always
	// taken whole). RATE_LIMIT_IPV6_PREFIX; default 64, the block one
	// subscriber line or host gets.
	RateLimitIPv6Prefix int `json:"rate_limit_ipv6_prefix,omitempty"`
	// Access token lifetime in minutes, 5–60. ACCESS_TOKEN_EXPIRE_MINUTES;
	// default 15.
	AccessTokenExpireMinutes int `json:"access_token_expire_minutes,omitempty"`
	// Where panics and 5xx answers are reported; empty sends nothing and
	// starts nothing. SENTRY_DSN.
	SentryDSN string `json:"sentry_dsn,omitempty"`
	// The environment named in reports. SENTRY_ENVIRONMENT; default
	// staging with DEV_MODE, production without.
	SentryEnvironment string `json:"sentry_environment,omitempty"`
	// How often expired sessions, one-time codes and Idempotency-Key
	// records are deleted; 0 turns the sweep off.
	// RETENTION_SWEEP_INTERVAL; default 10m.
	RetentionSweepInterval *caddy.Duration `json:"retention_sweep_interval,omitempty"`
	// How many days the tombstone of a deleted mood is kept for the change
	// feed, 1–3650: a device offline longer re-downloads.
	// SYNC_TOMBSTONE_DAYS; default 90.
	SyncTombstoneDays int `json:"sync_tombstone_days,omitempty"`

	settings Settings
	sweeper  *sweeper
	reporter *errorreport.Reporter
	db       *bun.DB
	dbKind   database.Kind
	dbKey    string
	redis    rueidis.Client
	redisKey string
	limiter  *limiter.Limiter
	limKey   string
	issuer   *token.Issuer
	authn    *auth.Authenticator
	logger   *zap.Logger
}

// Settings is the resolved, validated configuration.
type Settings struct {
	DevMode                bool
	SecretKey              []byte
	SecretKeyPrevious      []byte
	Database               database.Config
	DatabaseConnectTimeout time.Duration
	MigrateOnStart         bool
	RedisURL               string
	RateLimitRedisTimeout  time.Duration
	RateLimitMemoryMaxKeys int
	RateLimitIPv6Prefix    int
	AccessTokenTTL         time.Duration
	// Sentry is the error reporting; its DSN is empty when off.
	Sentry errorreport.Config
	// RetentionSweepInterval is 0 when the sweep is off.
	RetentionSweepInterval time.Duration
	// SyncTombstoneRetention is how long deleted moods' tombstones are
	// kept, and so how old a change-feed cursor may be.
	SyncTombstoneRetention time.Duration
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "soul",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision resolves and validates the settings, then opens (or reuses) the
// database and the Redis client.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	s, err := a.resolve()
	if err != nil {
		return err
	}
	a.settings = s
	if err := metrics.Register(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("soul: metrics: %w", err)
	}
	// Every series of the retention sweep exists from the start, at 0, so
	// the alert on it has something to compute increase() over.
	for _, kind := range retention.Kinds {
		metrics.RetentionDeleted.WithLabelValues(kind)
	}
	metrics.RetentionSweeps.WithLabelValues(metrics.ResultOK)
	metrics.RetentionSweeps.WithLabelValues(metrics.ResultError)
	if s.DevMode && strings.TrimSpace(caddy.NewReplacer().ReplaceAll(a.SecretKey, "")) == "" {
		a.logger.Warn("SECRET_KEY is unset: using a random key for this process; tokens will not survive a restart (DEV_MODE only)")
	}

	a.dbKey = s.Database.Key()
	val, _, err := databases.LoadOrNew(a.dbKey, func() (caddy.Destructor, error) {
		return openDatabase(ctx, s, a.logger)
	})
	if err != nil {
		return err
	}
	res := val.(*databaseResource)
	a.db, a.dbKind = res.db, res.kind

	if s.RedisURL != "" {
		a.redisKey = s.RedisURL
		val, _, err := redisClients.LoadOrNew(a.redisKey, func() (caddy.Destructor, error) {
			return openRedis(s.RedisURL, a.logger)
		})
		if err != nil {
			a.Cleanup()
			return err
		}
		a.redis = val.(*redisResource).client
	}

	if s.Sentry.DSN != "" {
		rep, err := errorreport.New(s.Sentry)
		if err != nil {
			a.Cleanup()
			return err
		}
		a.reporter = rep
	}

	a.issuer, err = token.NewIssuer(token.Options{
		Key:         s.SecretKey,
		PreviousKey: s.SecretKeyPrevious,
		AccessTTL:   s.AccessTokenTTL,
	})
	if err != nil {
		a.Cleanup()
		return fmt.Errorf("soul: access tokens: %w", err)
	}
	metrics.AddIssuer(a.issuer)
	if err := a.acquireLimiter(); err != nil {
		a.Cleanup()
		return err
	}
	a.authn = auth.NewAuthenticator(a.issuer, a.db, a.limiter)
	return nil
}

// Start logs what the app runs on (the resources were opened in Provision)
// and starts the retention sweep.
func (a *App) Start() error {
	limits := "memory (per instance)"
	if a.redis != nil {
		limits = "redis " + redactURL(a.settings.RedisURL)
	}
	a.logger.Info("soul started",
		zap.String("version", version.Version),
		zap.Bool("dev_mode", a.settings.DevMode),
		zap.String("database", a.settings.Database.Describe()),
		zap.Bool("database_prepared_statements", a.settings.Database.URL != "" && !a.settings.Database.NoPreparedStatements),
		zap.String("rate_limit_storage", limits),
		zap.Bool("error_reports", a.reporter != nil),
		zap.Duration("retention_sweep_interval", a.settings.RetentionSweepInterval),
	)
	if a.settings.RetentionSweepInterval > 0 {
		a.sweeper = &sweeper{app: a, interval: a.settings.RetentionSweepInterval}
		a.sweeper.start()
	}
	return nil
}

// Stop ends the retention sweep (waiting for a statement in flight, at
// most its timeout) and sends the error reports still queued, waiting
// briefly. Pooled
// resources are released in Cleanup, after the new config (on a reload) has
// taken its own references.
func (a *App) Stop() error {
	if a.sweeper != nil {
		a.sweeper.stop()
		a.sweeper = nil
	}
	if a.reporter != nil {
		a.reporter.Flush(2 * time.Second)
	}
	return nil
}

// Cleanup releases this config's references to the shared resources.
func (a *App) Cleanup() error {
	var errs []error
	if a.issuer != nil {
		metrics.RemoveIssuer(a.issuer)
	}
	if a.reporter != nil {
		a.reporter.Close()
		a.reporter = nil
	}
	if a.dbKey != "" {
		if _, err := databases.Delete(a.dbKey); err != nil {
			errs = append(errs, err)
		}
		a.dbKey = ""
	}
	if a.limKey != "" {
		if _, err := limiters.Delete(a.limKey); err != nil {
			errs = append(errs, err)
		}
		a.limKey = ""
	}
	if a.redisKey != "" {
		if _, err := redisClients.Delete(a.redisKey); err != nil {
			errs = append(errs, err)
		}
		a.redisKey = ""
	}
	return errors.Join(errs...)
}

// Settings returns the resolved configuration.
func (a *App) Settings() Settings { return a.settings }

// Reporter returns the error reporter, or nil when SENTRY_DSN is unset.
func (a *App) Reporter() *errorreport.Reporter { return a.reporter }

// DB returns the shared database.
func (a *App) DB() *bun.DB { return a.db }

// DBKind says whether the database is Postgres or SQLite.
func (a *App) DBKind() database.Kind { return a.dbKind }

// Redis returns the shared Redis client, or nil when REDIS_URL is unset.
func (a *App) Redis() rueidis.Client { return a.redis }

// DevMode reports DEV_MODE.
func (a *App) DevMode() bool { return a.settings.DevMode }

// Limiter returns the rate limiter every handler of the running config
// shares: the sign-in rules and the soul_rate_limit policies count in one
// local store, and forgetting an account reaches them all.
func (a *App) Limiter() *limiter.Limiter { return a.limiter }

// Issuer returns the one access-token issuer (SECRET_KEY, with
// SECRET_KEY_PREVIOUS still verifying).
func (a *App) Issuer() *token.Issuer { return a.issuer }

// Authenticator returns the one check of a request's access token that
// every handler needing a signed-in user shares.
func (a *App) Authenticator() *auth.Authenticator { return a.authn }

// IPv6Prefix is RATE_LIMIT_IPV6_PREFIX: how many leading bits of an IPv6
// address name a client, for the shield and every per-IP limit.
func (a *App) IPv6Prefix() int { return a.settings.RateLimitIPv6Prefix }

// ClientAddr names the client of r for per-IP limits (httpapi.Client with
// this app's IPv6 prefix).
func (a *App) ClientAddr(r *http.Request) string {
	return httpapi.Client(r, a.settings.RateLimitIPv6Prefix)
}

// DeriveKey derives the key for one purpose (label) from SECRET_KEY.
func (a *App) DeriveKey(label string) ([]byte, error) {
	return auth.DeriveKey(a.settings.SecretKey, label)
}

// DeriveKeys derives the key for label from SECRET_KEY and, while a
// rotation is under way, from SECRET_KEY_PREVIOUS: the first seals, all
// open.
func (a *App) DeriveKeys(label string) ([][]byte, error) {
	var keys [][]byte
	for _, secret := range [][]byte{a.settings.SecretKey, a.settings.SecretKeyPrevious} {
		if len(secret) == 0 {
			continue
		}
		k, err := auth.DeriveKey(secret, label)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// FromContext returns the provisioned `soul` app of the running config.
func FromContext(ctx caddy.Context) (*App, error) {
	v, err := ctx.App("soul")
	if err != nil {
		return nil, fmt.Errorf("loading soul app: %w", err)
	}
	return v.(*App), nil
}

// rules are the messages of settings out of range, by subdirective: one
// for each typed (non-string) setting, so it is also their list. The
// Caddyfile adapter and Provision both use them.
var rules = map[string]string{
	"dev_mode":                     "DEV_MODE must be true or false",
	"migrate_on_start":             "MIGRATE_ON_START must be true or false",
	"database_connect_timeout":     "DATABASE_CONNECT_TIMEOUT must be a positive duration such as 30s",
	"database_max_connections":     "DATABASE_MAX_CONNECTIONS must be a whole number from 1 to 1000",
	"database_prepared_statements": "DATABASE_PREPARED_STATEMENTS must be true or false",
	"rate_limit_redis_timeout":     "RATE_LIMIT_REDIS_TIMEOUT must be a duration from 10ms to 10s, such as 200ms",
	"rate_limit_memory_max_keys":   "RATE_LIMIT_MEMORY_MAX_KEYS must be a whole number from 1000 to 10000000",
	"rate_limit_ipv6_prefix":       "RATE_LIMIT_IPV6_PREFIX must be a whole number of bits from 32 to 128, such as 64",
	"access_token_expire_minutes":  "ACCESS_TOKEN_EXPIRE_MINUTES must be a whole number from 5 to 60",
	"retention_sweep_interval":     "RETENTION_SWEEP_INTERVAL must be a duration of 1s or more such as 10m, or 0 for off",
	"sync_tombstone_days":          "SYNC_TOMBSTONE_DAYS must be a whole number of days from 1 to 3650",
}

// outOfRange lists the typed settings that are set (non-zero) and out of
// their range, by subdirective.
func (a *App) outOfRange() []string {
	var bad []string
	check := func(name string, set, ok bool) {
		if set && !ok {
			bad = append(bad, name)
		}
	}
	between := func(n, lo, hi int) bool { return n >= lo && n <= hi }
	dconn := time.Duration(a.DatabaseConnectTimeout)
	check("database_connect_timeout", dconn != 0, dconn > 0)
	check("database_max_connections", a.DatabaseMaxConnections != 0, between(a.DatabaseMaxConnections, 1, 1000))
	rt := time.Duration(a.RateLimitRedisTimeout)
	check("rate_limit_redis_timeout", rt != 0, rt >= 10*time.Millisecond && rt <= 10*time.Second)
	check("rate_limit_memory_max_keys", a.RateLimitMemoryMaxKeys != 0, between(a.RateLimitMemoryMaxKeys, 1000, 10_000_000))
	check("rate_limit_ipv6_prefix", a.RateLimitIPv6Prefix != 0, between(a.RateLimitIPv6Prefix, 32, 128))
	check("access_token_expire_minutes", a.AccessTokenExpireMinutes != 0, between(a.AccessTokenExpireMinutes, 5, 60))
	if a.RetentionSweepInterval != nil {
		d := time.Duration(*a.RetentionSweepInterval)
		check("retention_sweep_interval", true, d == 0 || d >= time.Second)
	}
	check("sync_tombstone_days", a.SyncTombstoneDays != 0, between(a.SyncTombstoneDays, 1, 3650))
	return bad
}

// checkRange checks one typed setting's range, for the Caddyfile adapter.
func (a *App) checkRange(name string) error {
	for _, bad := range a.outOfRange() {
		if bad == name {
			return errors.New(rules[name])
		}
	}
	return nil
}

// resolve resolves the placeholders of the secrets and URLs, applies the
// defaults and checks every rule; all problems are reported together, so an
// operator fixes them in one deploy.
func (a *App) resolve() (Settings, error) {
	repl := caddy.NewReplacer()
	secret := func(v string) string { return strings.TrimSpace(repl.ReplaceAll(v, "")) }
	var (
		s    Settings
		errs []string
	)
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	for _, name := range a.outOfRange() {
		fail("%s", rules[name])
	}
	orDefault := func(n, def int) int {
		if n == 0 {
			return def
		}
		return n
	}
	orDefaultD := func(d caddy.Duration, def time.Duration) time.Duration {
		if d == 0 {
			return def
		}
		return time.Duration(d)
	}

	s.DevMode = a.Dev
	s.SecretKey = []byte(secret(a.SecretKey))
	s.SecretKeyPrevious = []byte(secret(a.SecretKeyPrevious))
	s.Database = database.Config{URL: secret(a.DatabaseURL), SQLitePath: a.SQLitePath, MaxOpenConns: a.DatabaseMaxConnections,
		NoPreparedStatements: a.DatabasePreparedStatements != nil && !*a.DatabasePreparedStatements}
	if s.Database.SQLitePath == "" {
		s.Database.SQLitePath = "data/soul.db"
	}
	s.DatabaseConnectTimeout = orDefaultD(a.DatabaseConnectTimeout, 30*time.Second)
	s.MigrateOnStart = a.MigrateOnStart == nil || *a.MigrateOnStart
	s.RedisURL = secret(a.RedisURL)
	s.RateLimitRedisTimeout = orDefaultD(a.RateLimitRedisTimeout, limiter.DefaultTimeout)
	s.RateLimitMemoryMaxKeys = orDefault(a.RateLimitMemoryMaxKeys, limiter.DefaultMaxLocalKeys)
	s.RateLimitIPv6Prefix = orDefault(a.RateLimitIPv6Prefix, clientaddr.DefaultIPv6Prefix)
	s.AccessTokenTTL = time.Duration(orDefault(a.AccessTokenExpireMinutes, 15)) * time.Minute

	s.Sentry = errorreport.Config{
		DSN:         secret(a.SentryDSN),
		Environment: a.SentryEnvironment,
		Release:     version.Version,
	}
	if s.Sentry.Environment == "" {
		s.Sentry.Environment = "production"
		if s.DevMode {
			s.Sentry.Environment = "staging"
		}
	}
	if s.Sentry.DSN != "" {
		if err := errorreport.ValidateDSN(s.Sentry.DSN); err != nil {
			fail("%s", err.Error())
		}
	}
	s.RetentionSweepInterval = DefaultRetentionSweepInterval
	if a.RetentionSweepInterval != nil {
		s.RetentionSweepInterval = time.Duration(*a.RetentionSweepInterval)
	}
	s.SyncTombstoneRetention = mood.DefaultTombstoneRetention
	if a.SyncTombstoneDays != 0 {
		s.SyncTombstoneRetention = time.Duration(a.SyncTombstoneDays) * 24 * time.Hour
	}

	if s.Database.URL != "" {
		if err := database.ValidateURL(s.Database.URL); err != nil {
			fail("%s", err.Error())
		}
	}
	if s.RedisURL != "" {
		if err := validateRedisURL(s.RedisURL); err != nil {
			fail("%s", err.Error())
		}
	}

	if !s.DevMode {
		if len(s.SecretKey) < 32 {
			fail("SECRET_KEY must be at least 32 characters when DEV_MODE=false")
		}
		if s.Database.URL == "" {
			fail("DATABASE_URL is required when DEV_MODE=false")
		}
		if s.RedisURL == "" {
			fail("REDIS_URL is required when DEV_MODE=false")
		}
	} else if len(s.SecretKey) == 0 {
		key := make([]byte, 32)
		if _, err := readRandom(key); err != nil {
			fail("cannot generate a development SECRET_KEY: %v", err)
		}
		s.SecretKey = []byte(fmt.Sprintf("%x", key))
	}

	if len(errs) > 0 {
		return s, fmt.Errorf("invalid configuration: %s", strings.Join(errs, "; "))
	}
	return s, nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
