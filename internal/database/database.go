// Package database opens the product's one database through bun: Postgres
// when DATABASE_URL is set (through pgx's database/sql driver, whose
// connections the hot queries also use natively: see Native), otherwise an
// embedded SQLite file through a pure-Go driver, so the binary stays static.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/soulapp/soul/internal/tracing"
)

// Kind names the database in use, for logs and /healthz.
type Kind string

// The two databases the binary speaks to.
const (
	Postgres Kind = "postgres"
	SQLite   Kind = "sqlite"
)

// Config selects and tunes the database.
type Config struct {
	// URL is DATABASE_URL; empty selects SQLite.
	URL string
	// SQLitePath is the embedded database file, used when URL is empty.
	SQLitePath string
	// MaxOpenConns bounds the Postgres pool; 0 takes DefaultMaxOpenConns.
	MaxOpenConns int
	// NoPreparedStatements sends Native's queries without named prepared
	// statements (see StatementMode), for PgBouncer before 1.21 in
	// transaction pooling mode; DATABASE_PREPARED_STATEMENTS=false. The
	// zero value prepares them, the fastest on Postgres itself and on
	// PgBouncer 1.21+ with max_prepared_statements set.
	NoPreparedStatements bool
}

// DefaultMaxOpenConns is the Postgres pool size of each process unless
// DATABASE_MAX_CONNECTIONS says otherwise: enough for the concurrency two
// CPUs serve, and two replicas plus a deploy's overlap stay within
// Postgres's default max_connections of 100.
const DefaultMaxOpenConns = 20

// Key identifies the connection a Config opens: two configs with the same
// key share one pool.
func (c Config) Key() string {
	if c.URL != "" {
		// A new pool size or statement mode takes a new pool: a reload
		// applies it.
		return "postgres:" + strconv.Itoa(c.maxOpen()) + ":" + c.statementMode().String() + ":" + c.URL
	}
	return "sqlite:" + c.SQLitePath
}

func (c Config) maxOpen() int {
	if c.MaxOpenConns > 0 {
		return c.MaxOpenConns
	}
	return DefaultMaxOpenConns
}

// Describe names the database without its credentials, for logs.
func (c Config) Describe() string {
	if c.URL == "" {
		return "sqlite " + c.SQLitePath
	}
	u, err := url.Parse(NormalizeURL(c.URL))
	if err != nil {
		return "postgres (unparseable URL)"
	}
	return "postgres " + u.Host + u.Path
}

// NormalizeURL accepts the URL forms of the earlier stack
// (postgresql+psycopg2://) and Railway (postgresql://) and returns the
// postgres:// form the driver reads.
func NormalizeURL(raw string) string {
	raw = strings.TrimSpace(raw)
	for _, prefix := range []string{"postgresql+psycopg2://", "postgresql+psycopg://", "postgresql://"} {
		if strings.HasPrefix(raw, prefix) {
			return "postgres://" + strings.TrimPrefix(raw, prefix)
		}
	}
	return raw
}

// ValidateURL reports what is wrong with a DATABASE_URL without echoing it,
// since it holds a password.
func ValidateURL(raw string) error {
	u, err := url.Parse(NormalizeURL(raw))
	if err != nil {
		return errors.New("DATABASE_URL is not a valid URL")
	}
	if u.Scheme != "postgres" {
		return fmt.Errorf("DATABASE_URL must start with postgres://, postgresql:// or postgresql+psycopg2:// (got scheme %q)", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("DATABASE_URL has no host")
	}
	if strings.Trim(u.Path, "/") == "" {
		return errors.New("DATABASE_URL has no database name")
	}
	if u.User == nil || u.User.Username() == "" {
		return errors.New("DATABASE_URL has no user name")
	}
	if mode := u.Query().Get("sslmode"); mode != "" {
		switch mode {
		case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
		default:
			return fmt.Errorf("DATABASE_URL has an unknown sslmode %q", mode)
		}
	}
	return nil
}

// Open opens the database and checks it answers within connectTimeout,
// retrying while it starts up.
func Open(ctx context.Context, cfg Config, connectTimeout time.Duration) (*bun.DB, Kind, error) {
	var (
		db   *bun.DB
		kind Kind
		err  error
	)
	if cfg.URL != "" {
		db, err = openPostgres(cfg)
		kind = Postgres
	} else {
		db, err = openSQLite(cfg.SQLitePath)
		kind = SQLite
	}
	if err != nil {
		return nil, kind, err
	}
	system := "postgresql"
	if kind == SQLite {
		system = "sqlite"
	}
	db.AddQueryHook(tracing.QueryHook{System: system})
	if err := waitReady(ctx, db, connectTimeout); err != nil {
		_ = db.Close()
		return nil, kind, fmt.Errorf("database %s unreachable: %w", cfg.Describe(), err)
	}
	return db, kind, nil
}

func openPostgres(cfg Config) (*bun.DB, error) {
	if err := ValidateURL(cfg.URL); err != nil {
		return nil, err
	}
	pc, err := pgx.ParseConfig(NormalizeURL(cfg.URL))
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, errors.New("DATABASE_URL is malformed")
	}
	pc.ConnectTimeout = dialTimeout
	pc.RuntimeParams["application_name"] = "soul"
	// bun writes every value into the statement's text, so each of its
	// statements is new to Postgres: the simple protocol sends it in one
	// round trip, as a prepared statement could not. The hot queries
	// (Native) pass their values apart and name a mode of their own.
	pc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	dial := pc.DialFunc
	pc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newTimeoutConn(c, readTimeout, writeTimeout), nil
	}
	mode := cfg.statementMode()
	sqldb := stdlib.OpenDB(*pc, stdlib.OptionAfterConnect(func(_ context.Context, c *pgx.Conn) error {
		c.PgConn().CustomData()[statementModeKey] = mode
		return nil
	}))
	maxOpen := cfg.maxOpen()
	sqldb.SetMaxOpenConns(maxOpen)
	sqldb.SetMaxIdleConns(maxOpen)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	sqldb.SetConnMaxLifetime(30 * time.Minute)
	return bun.NewDB(sqldb, pgdialect.New()), nil
}

// The waits of a Postgres connection: a server that stops answering fails
// a call after these instead of holding its request (and a pool slot)
// until the client gives up.
const (
	dialTimeout  = 3 * time.Second
	readTimeout  = 10 * time.Second
	writeTimeout = 5 * time.Second
)

func openSQLite(path string) (*bun.DB, error) {
	if path == "" {
		path = filepath.Join("data", "soul.db")
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite: create %s: %w", dir, err)
		}
	}
	// Foreign keys give the same cascades as Postgres; WAL and a busy
	// timeout let readers and the single writer share the file.
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// SQLite has one writer; one connection avoids SQLITE_BUSY between our
	// own goroutines.
	sqldb.SetMaxOpenConns(1)
	return bun.NewDB(sqldb, sqlitedialect.New()), nil
}

func waitReady(ctx context.Context, db *bun.DB, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		pingCtx, pingCancel := context.WithTimeout(ctx, 3*time.Second)
		lastErr = db.PingContext(pingCtx)
		pingCancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return lastErr
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Ping checks the database answers within timeout.
func Ping(ctx context.Context, db *bun.DB, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var one int
	return db.NewRaw("SELECT 1").Scan(ctx, &one)
}
