// Package migrations holds the SQL schema of both databases, embedded in the
// binary, and applies it under a lock so replicas starting together do not
// race.
//
// Migrations are expand/contract: a new one only adds what the next release
// needs and keeps what the running one uses, so redeploying the previous
// image is always a safe rollback.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// advisoryLockKey is the Postgres advisory lock held while migrating; any
// constant works as long as every replica uses the same one ("soul" in ASCII).
const advisoryLockKey = 0x736f756c

// Status is one migration and whether it is applied.
type Status struct {
	Name    string
	Applied bool
	GroupID int64
}

// Runner applies the migrations of one database.
type Runner struct {
	db       *bun.DB
	migrator *migrate.Migrator
}

// New returns a Runner for db, choosing the SQL of its dialect.
func New(db *bun.DB) (*Runner, error) {
	dir := "sqlite"
	if db.Dialect().Name() == dialect.PG {
		dir = "postgres"
	}
	sub, err := fs.Sub(files, dir)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(sub); err != nil {
		return nil, fmt.Errorf("migrations: discover: %w", err)
	}
	m := migrate.NewMigrator(db, ms,
		migrate.WithTableName("soul_migrations"),
		migrate.WithLocksTableName("soul_migration_locks"),
		migrate.WithMarkAppliedOnSuccess(true),
	)
	return &Runner{db: db, migrator: m}, nil
}

// Up applies every pending migration and returns the names applied.
func (r *Runner) Up(ctx context.Context) ([]string, error) {
	var names []string
	err := r.locked(ctx, func(ctx context.Context) error {
		g, err := r.migrator.Migrate(ctx)
		if err != nil {
			return fmt.Errorf("migrate up: %w", err)
		}
		for _, m := range g.Migrations {
			names = append(names, m.Name)
		}
		return nil
	})
	return names, err
}

// Down rolls back the last applied group and returns the names rolled back.
func (r *Runner) Down(ctx context.Context) ([]string, error) {
	var names []string
	err := r.locked(ctx, func(ctx context.Context) error {
		g, err := r.migrator.Rollback(ctx)
		if err != nil {
			return fmt.Errorf("migrate down: %w", err)
		}
		for _, m := range g.Migrations {
			names = append(names, m.Name)
		}
		return nil
	})
	return names, err
}

// Status lists every known migration in order.
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	if err := r.migrator.Init(ctx); err != nil {
		return nil, fmt.Errorf("migrate status: %w", err)
	}
	ms, err := r.migrator.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate status: %w", err)
	}
	out := make([]Status, 0, len(ms))
	for _, m := range ms {
		out = append(out, Status{Name: m.Name, Applied: m.IsApplied(), GroupID: m.GroupID})
	}
	return out, nil
}

// locked runs fn while holding the migration lock. On Postgres it is a
// session advisory lock, which waits (unlike bun's lock table, which fails)
// so a second replica blocks until the first is done and then finds nothing
// to do. SQLite is one process's file, so there is nobody to race.
func (r *Runner) locked(ctx context.Context, fn func(context.Context) error) error {
	if r.db.Dialect().Name() != dialect.PG {
		if err := r.migrator.Init(ctx); err != nil {
			return fmt.Errorf("migrate init: %w", err)
		}
		return fn(ctx)
	}
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate lock: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", advisoryLockKey); err != nil {
		return fmt.Errorf("migrate lock: %w", err)
	}
	defer func() {
		// A fresh context: the lock must be released even when ctx ended.
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(unlockCtx, "SELECT pg_advisory_unlock(?)", advisoryLockKey)
	}()
	// The bookkeeping tables are created under the lock too: two replicas
	// running CREATE TABLE IF NOT EXISTS at once can both miss the table
	// and collide on Postgres's catalog (duplicate pg_type entry).
	if err := r.migrator.Init(ctx); err != nil {
		return fmt.Errorf("migrate init: %w", err)
	}
	return fn(ctx)
}
