// Package soul is the `soul` Caddy app: the configuration of the SOUL API
// and the resources its handlers share (the database, the Redis client and
// the settings derived from the environment).
//
// Handlers find it with ctx.App("soul"); they never start or stop it. The
// database and Redis clients live in usage pools keyed by their URLs, so a
// config reload with the same URLs keeps the same connections and a changed
// URL opens new ones while in-flight requests finish on the old.
package soul

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/rueidis"
	"github.com/uptrace/bun"
	"go.uber.org/zap"

	"github.com/soulapp/soul/internal/clientaddr"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/errorreport"
	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/metrics"
	"github.com/soulapp/soul/internal/retention"
	"github.com/soulapp/soul/internal/version"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `soul` app. Every field may hold placeholders such as
// {env.SECRET_KEY}, resolved when the app is provisioned so secrets never
// appear in the adapted JSON or the admin API's config. An empty field reads
// the environment variable of the same name (given in each comment).
type App struct {
	// Development conveniences (local OTP codes returned in answers, relaxed
	// checks). DEV_MODE; default false, so a forgotten variable is safe.
	DevMode string `json:"dev_mode,omitempty"`
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
	DatabaseConnectTimeout string `json:"database_connect_timeout,omitempty"`
	// The most Postgres connections this process opens, 1–1000.
	// DATABASE_MAX_CONNECTIONS; default 20.
	DatabaseMaxConnections string `json:"database_max_connections,omitempty"`
	// Apply pending migrations at start. MIGRATE_ON_START; default true.
	MigrateOnStart string `json:"migrate_on_start,omitempty"`
	// Redis URL (redis:// or rediss://); empty keeps limits in memory.
	// REDIS_URL; required in production.
	RedisURL string `json:"redis_url,omitempty"`
	// How long a rate-limit check waits for Redis before it answers from
	// per-instance memory instead, 10ms–10s. RATE_LIMIT_REDIS_TIMEOUT;
	// default 200ms.
	RateLimitRedisTimeout string `json:"rate_limit_redis_timeout,omitempty"`
	// The most keys the in-memory rate-limit store holds (every limit in
	// embedded mode, the fallback while Redis is down), 1000–10000000.
	// RATE_LIMIT_MEMORY_MAX_KEYS; default 100000.
	RateLimitMemoryMaxKeys string `json:"rate_limit_memory_max_keys,omitempty"`
	// How many leading bits of an IPv6 client address name the client for
	// the shield and the per-IP limits, 32–128 (IPv4 addresses are always
	// taken whole). RATE_LIMIT_IPV6_PREFIX; default 64, the block one
	// subscriber line or host gets.
	RateLimitIPv6Prefix string `json:"rate_limit_ipv6_prefix,omitempty"`
	// Comma-separated browser origins allowed by CORS. CORS_ORIGINS.
	CORSOrigins string `json:"cors_origins,omitempty"`
	// Access token lifetime, 5–60. ACCESS_TOKEN_EXPIRE_MINUTES; default 15.
	AccessTokenExpireMinutes string `json:"access_token_expire_minutes,omitempty"`
	// Refresh token lifetime, 1–365. REFRESH_TOKEN_EXPIRE_DAYS; default 30.
	RefreshTokenExpireDays string `json:"refresh_token_expire_days,omitempty"`
	// Twilio Verify credentials. TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN,
	// TWILIO_VERIFY_SERVICE_SID; required in production.
	TwilioAccountSID       string `json:"twilio_account_sid,omitempty"`
	TwilioAuthToken        string `json:"twilio_auth_token,omitempty"`
	TwilioVerifyServiceSID string `json:"twilio_verify_service_sid,omitempty"`
	// Twilio Verify's base URL; tests point it at a local stand-in.
	// TWILIO_VERIFY_BASE_URL; default https://verify.twilio.com.
	TwilioVerifyBaseURL string `json:"twilio_verify_base_url,omitempty"`
	// Numbers that sign in with a fixed code, for App Store review:
	// "+15555550100=123456,...". OTP_TEST_NUMBERS.
	OTPTestNumbers string `json:"otp_test_numbers,omitempty"`
	// RFC 3339 instant after which the test numbers stop working.
	// OTP_TEST_NUMBERS_VALID_UNTIL.
	OTPTestNumbersValidUntil string `json:"otp_test_numbers_valid_until,omitempty"`
	// Where panics and 5xx answers are reported; empty sends nothing and
	// starts nothing. SENTRY_DSN.
	SentryDSN string `json:"sentry_dsn,omitempty"`
	// The environment named in reports. SENTRY_ENVIRONMENT; default
	// staging with DEV_MODE, production without.
	SentryEnvironment string `json:"sentry_environment,omitempty"`
	// How often expired sessions, one-time codes and Idempotency-Key
	// records are deleted; 0 turns the sweep off.
	// RETENTION_SWEEP_INTERVAL; default 10m.
	RetentionSweepInterval string `json:"retention_sweep_interval,omitempty"`

	settings Settings
	sweeper  *sweeper
	reporter *errorreport.Reporter
	db       *bun.DB
	dbKind   database.Kind
	dbKey    string
	redis    rueidis.Client
	redisKey string
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
	CORSOrigins            []string
	AccessTokenTTL         time.Duration
	RefreshTokenTTL        time.Duration
	Twilio                 TwilioSettings
	OTPTestNumbers         string
	OTPTestNumbersUntil    time.Time
	// Sentry is the error reporting; its DSN is empty when off.
	Sentry errorreport.Config
	// RetentionSweepInterval is 0 when the sweep is off.
	RetentionSweepInterval time.Duration
}

// TwilioSettings are Twilio Verify's credentials; zero when not configured.
type TwilioSettings struct {
	AccountSID string
	AuthToken  string
	ServiceSID string
	BaseURL    string
}

// Configured reports whether all three credentials are set.
func (t TwilioSettings) Configured() bool {
	return t.AccountSID != "" && t.AuthToken != "" && t.ServiceSID != ""
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
	if s.DevMode && len(a.SecretKey) == 0 && os.Getenv("SECRET_KEY") == "" {
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

// FromContext returns the provisioned `soul` app of the running config.
func FromContext(ctx caddy.Context) (*App, error) {
	v, err := ctx.App("soul")
	if err != nil {
		return nil, fmt.Errorf("loading soul app: %w", err)
	}
	return v.(*App), nil
}

// resolve replaces placeholders, applies env defaults and checks every
// rule; all problems are reported together, one per line-fragment, so an
// operator fixes them in one deploy.
func (a *App) resolve() (Settings, error) {
	repl := caddy.NewReplacer()
	get := func(field, env string) string {
		v := field
		if v == "" {
			v = os.Getenv(env)
		}
		return strings.TrimSpace(repl.ReplaceAll(v, ""))
	}
	var (
		s    Settings
		errs []string
	)
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }

	if v := get(a.DevMode, "DEV_MODE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fail("DEV_MODE must be true or false")
		}
		s.DevMode = b
	}
	s.SecretKey = []byte(get(a.SecretKey, "SECRET_KEY"))
	s.SecretKeyPrevious = []byte(get(a.SecretKeyPrevious, "SECRET_KEY_PREVIOUS"))
	s.Database = database.Config{
		URL:        get(a.DatabaseURL, "DATABASE_URL"),
		SQLitePath: get(a.SQLitePath, "SQLITE_PATH"),
	}
	if s.Database.SQLitePath == "" {
		s.Database.SQLitePath = "data/soul.db"
	}
	if v := get(a.DatabaseMaxConnections, "DATABASE_MAX_CONNECTIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fail("DATABASE_MAX_CONNECTIONS must be a whole number from 1 to 1000")
		}
		s.Database.MaxOpenConns = n
	}
	s.DatabaseConnectTimeout = 30 * time.Second
	if v := get(a.DatabaseConnectTimeout, "DATABASE_CONNECT_TIMEOUT"); v != "" {
		d, err := caddy.ParseDuration(v)
		if err != nil || d <= 0 {
			fail("DATABASE_CONNECT_TIMEOUT must be a positive duration such as 30s")
		}
		s.DatabaseConnectTimeout = d
	}
	s.MigrateOnStart = true
	if v := get(a.MigrateOnStart, "MIGRATE_ON_START"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fail("MIGRATE_ON_START must be true or false")
		}
		s.MigrateOnStart = b
	}
	s.RedisURL = get(a.RedisURL, "REDIS_URL")
	s.RateLimitRedisTimeout = limiter.DefaultTimeout
	if v := get(a.RateLimitRedisTimeout, "RATE_LIMIT_REDIS_TIMEOUT"); v != "" {
		d, err := caddy.ParseDuration(v)
		if err != nil || d < 10*time.Millisecond || d > 10*time.Second {
			fail("RATE_LIMIT_REDIS_TIMEOUT must be a duration from 10ms to 10s, such as 200ms")
		}
		s.RateLimitRedisTimeout = d
	}
	s.RateLimitMemoryMaxKeys = limiter.DefaultMaxLocalKeys
	if v := get(a.RateLimitMemoryMaxKeys, "RATE_LIMIT_MEMORY_MAX_KEYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 || n > 10_000_000 {
			fail("RATE_LIMIT_MEMORY_MAX_KEYS must be a whole number from 1000 to 10000000")
		}
		s.RateLimitMemoryMaxKeys = n
	}
	s.RateLimitIPv6Prefix = clientaddr.DefaultIPv6Prefix
	if v := get(a.RateLimitIPv6Prefix, "RATE_LIMIT_IPV6_PREFIX"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 32 || n > 128 {
			fail("RATE_LIMIT_IPV6_PREFIX must be a whole number of bits from 32 to 128, such as 64")
		}
		s.RateLimitIPv6Prefix = n
	}
	for _, o := range strings.Split(get(a.CORSOrigins, "CORS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			s.CORSOrigins = append(s.CORSOrigins, o)
		}
	}
	s.AccessTokenTTL = 15 * time.Minute
	if v := get(a.AccessTokenExpireMinutes, "ACCESS_TOKEN_EXPIRE_MINUTES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 || n > 60 {
			fail("ACCESS_TOKEN_EXPIRE_MINUTES must be a whole number from 5 to 60")
		}
		s.AccessTokenTTL = time.Duration(n) * time.Minute
	}
	s.RefreshTokenTTL = 30 * 24 * time.Hour
	if v := get(a.RefreshTokenExpireDays, "REFRESH_TOKEN_EXPIRE_DAYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 365 {
			fail("REFRESH_TOKEN_EXPIRE_DAYS must be a whole number from 1 to 365")
		}
		s.RefreshTokenTTL = time.Duration(n) * 24 * time.Hour
	}
	s.Twilio = TwilioSettings{
		AccountSID: get(a.TwilioAccountSID, "TWILIO_ACCOUNT_SID"),
		AuthToken:  get(a.TwilioAuthToken, "TWILIO_AUTH_TOKEN"),
		ServiceSID: get(a.TwilioVerifyServiceSID, "TWILIO_VERIFY_SERVICE_SID"),
		BaseURL:    get(a.TwilioVerifyBaseURL, "TWILIO_VERIFY_BASE_URL"),
	}
	if s.Twilio.BaseURL == "" {
		s.Twilio.BaseURL = "https://verify.twilio.com"
	}
	s.OTPTestNumbers = get(a.OTPTestNumbers, "OTP_TEST_NUMBERS")
	if v := get(a.OTPTestNumbersValidUntil, "OTP_TEST_NUMBERS_VALID_UNTIL"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			fail("OTP_TEST_NUMBERS_VALID_UNTIL must be an RFC 3339 time such as 2027-01-31T00:00:00Z")
		}
		s.OTPTestNumbersUntil = t
	} else if s.OTPTestNumbers != "" {
		fail("OTP_TEST_NUMBERS needs OTP_TEST_NUMBERS_VALID_UNTIL (RFC 3339)")
	}

	s.Sentry = errorreport.Config{
		DSN:         get(a.SentryDSN, "SENTRY_DSN"),
		Environment: get(a.SentryEnvironment, "SENTRY_ENVIRONMENT"),
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
	if v := get(a.RetentionSweepInterval, "RETENTION_SWEEP_INTERVAL"); v != "" {
		d, err := caddy.ParseDuration(v)
		switch {
		case v == "0":
			s.RetentionSweepInterval = 0
		case err != nil || d < time.Second:
			fail("RETENTION_SWEEP_INTERVAL must be a duration of 1s or more such as 10m, or 0 for off")
		default:
			s.RetentionSweepInterval = d
		}
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
		if len(s.CORSOrigins) == 0 {
			fail("CORS_ORIGINS is required when DEV_MODE=false")
		}
		for _, o := range s.CORSOrigins {
			if strings.Contains(o, "*") {
				fail("CORS_ORIGINS may not hold a wildcard when DEV_MODE=false")
				break
			}
		}
		if !s.Twilio.Configured() {
			fail("TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_VERIFY_SERVICE_SID are required when DEV_MODE=false")
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
