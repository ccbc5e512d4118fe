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
	"errors"
	"fmt"
	"io/fs"

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

// locked runs fn while holding the migration lock. On Postgres it is an
// advisory lock, which waits (unlike bun's lock table, which fails) so a
// second replica blocks until the first is done and then finds nothing to
// do. SQLite is one process's file, so there is nobody to race.
//
// The lock is taken with pg_advisory_xact_lock in a transaction of its own
// that stays open while fn runs, and is released by that transaction's
// end, not by an unlock statement: PgBouncer in transaction pooling mode
// keeps one server connection for a client only while a transaction is
// open, so a session-level lock would stay on whichever server connection
// took it (for the next client of that connection to hold, and for nobody
// to release), and its unlock could run on another. An open transaction
// has one server connection, directly or through any pooler; and if this
// process dies, its connection closes and the transaction, lock and all,
// ends with it. bun's migrator runs each migration in a transaction of
// its own on other connections, so the pool needs two connections: the
// one holding the lock and one migrating.
func (r *Runner) locked(ctx context.Context, fn func(context.Context) error) (err error) {
	if r.db.Dialect().Name() != dialect.PG {
		if err := r.migrator.Init(ctx); err != nil {
			return fmt.Errorf("migrate init: %w", err)
		}
		return fn(ctx)
	}
	if n := r.db.DB.Stats().MaxOpenConnections; n == 1 {
		// One connection would hold the lock and leave none to migrate on.
		return errors.New("migrate: a pool of one connection cannot hold the migration lock and migrate; allow 2 or more (DATABASE_MAX_CONNECTIONS)")
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate lock: %w", err)
	}
	defer func() {
		// Commit and rollback release the lock alike: nothing else is
		// written in this transaction (and database/sql rolls it back by
		// itself when ctx ends). A failed commit is reported, since the
		// lock may have been lost before fn finished.
		if cerr := tx.Commit(); cerr != nil && err == nil {
			err = fmt.Errorf("migrate unlock: %w", cerr)
		}
	}()
	// A server-wide idle_in_transaction_session_timeout would end the
	// holding transaction while the migrations run on other connections,
	// letting the next replica in mid-run; SET LOCAL lasts as long as the
	// transaction.
	if _, err := tx.ExecContext(ctx, "SET LOCAL idle_in_transaction_session_timeout = 0"); err != nil {
		return fmt.Errorf("migrate lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", advisoryLockKey); err != nil {
		return fmt.Errorf("migrate lock: %w", err)
	}
	// The bookkeeping tables are created under the lock too: two replicas
	// running CREATE TABLE IF NOT EXISTS at once can both miss the table
	// and collide on Postgres's catalog (duplicate pg_type entry).
	if err := r.migrator.Init(ctx); err != nil {
		return fmt.Errorf("migrate init: %w", err)
	}
	return fn(ctx)
}
