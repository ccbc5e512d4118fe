package soul

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/rueidis"
	"github.com/uptrace/bun"
	"go.uber.org/zap"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/redisurl"
	"github.com/soulapp/soul/internal/tracing"
	"github.com/soulapp/soul/migrations"
)

// The shared connections, keyed by URL (see the package comment).
var (
	databases    = caddy.NewUsagePool()
	redisClients = caddy.NewUsagePool()
)

type databaseResource struct {
	db   *bun.DB
	kind database.Kind
}

func (r *databaseResource) Destruct() error { return r.db.Close() }

type redisResource struct{ client rueidis.Client }

func (r *redisResource) Destruct() error {
	r.client.Close()
	return nil
}

// openDatabase opens the database, waits for it to answer and applies the
// pending migrations, once per URL however many configs share it.
func openDatabase(ctx context.Context, s Settings, logger *zap.Logger) (*databaseResource, error) {
	db, kind, err := database.Open(ctx, s.Database, s.DatabaseConnectTimeout)
	if err != nil {
		return nil, err
	}
	if s.MigrateOnStart {
		r, err := migrations.New(db)
		if err != nil {
			_ = db.Close()
			return nil, err
		}
		mctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		applied, err := r.Up(mctx)
		cancel()
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("database %s: %w", s.Database.Describe(), err)
		}
		if len(applied) > 0 {
			logger.Info("migrations applied", zap.Strings("migrations", applied))
		}
	}
	return &databaseResource{db: db, kind: kind}, nil
}

// openRedis builds the client without requiring Redis to be up: the API
// must start and serve (limits fall back to memory) while Redis is away,
// and the client reconnects by itself when it returns.
func openRedis(raw string, logger *zap.Logger) (*redisResource, error) {
	// A single node unless the URL says cluster=1 (see redisurl.Options).
	opt, _, err := redisurl.Options(raw)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opt.DisableCache = true
	opt.Dialer.Timeout = 2 * time.Second
	opt.ConnWriteTimeout = 2 * time.Second
	opt.ClientName = "soul"
	client, err := rueidis.NewClient(opt)
	if client == nil {
		return nil, fmt.Errorf("redis %s: %w", redactURL(raw), err)
	}
	if err != nil {
		logger.Warn("redis unreachable at start; limits use per-instance memory until it answers",
			zap.String("redis", redactURL(raw)), zap.Error(err))
	}
	return &redisResource{client: tracing.Redis(client)}, nil
}

func validateRedisURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("REDIS_URL is not a valid URL")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return fmt.Errorf("REDIS_URL must start with redis:// or rediss:// (got scheme %q)", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("REDIS_URL has no host")
	}
	if _, _, err := redisurl.Options(raw); err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	return nil
}

// redactURL drops credentials and query from a URL for logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.Path, "/")
}

func readRandom(b []byte) (int, error) { return rand.Read(b) }
