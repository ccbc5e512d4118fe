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
	opt, err := rueidis.ParseURL(raw)
	if err != nil {
		return nil, errors.New("REDIS_URL is malformed")
	}
	// A single node unless the URL says cluster=1: then rueidis discovers
	// the cluster from the listed nodes (the host and every addr=) and
	// follows MOVED/ASK by itself. A single node is forced otherwise so the
	// client exists, and reconnects, while that node is down at start; a
	// cluster client needs one listed node to answer at start.
	cluster, err := redisClusterMode(raw)
	if err != nil {
		return nil, err
	}
	opt.ForceSingleClient = !cluster
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

// redisClusterMode reads REDIS_URL's cluster query parameter: "1" or
// "true" for a Redis Cluster; absent, "0" or "false" for a single node.
func redisClusterMode(raw string) (bool, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return false, errors.New("REDIS_URL is not a valid URL")
	}
	switch v := u.Query().Get("cluster"); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, fmt.Errorf("REDIS_URL: cluster=%q: want 1 or 0", v)
	}
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
	if _, err := rueidis.ParseURL(raw); err != nil {
		return errors.New("REDIS_URL is malformed")
	}
	if _, err := redisClusterMode(raw); err != nil {
		return err
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
