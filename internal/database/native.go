package database

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
)

// ErrNotNative reports a database without a native connection (SQLite):
// the caller runs its query through bun instead.
var ErrNotNative = errors.New("database: no native connection")

// StatementMode is how Native's queries reach Postgres: as a statement
// prepared once per connection and then only bound and executed, with
// binary results (the default), so Postgres parses and plans the hot
// queries once rather than on every request.
var StatementMode = pgx.QueryExecModeCacheStatement

// Native runs fn on a pooled Postgres connection as pgx itself: its values
// travel apart from the statement (StatementMode), and rows scan straight
// into Go values, without database/sql's conversions or bun's reflection.
// It is for the few queries on every request; the rest go through bun.
// On SQLite it returns ErrNotNative without calling fn.
func Native(ctx context.Context, db *bun.DB, fn func(*pgx.Conn) error) error {
	if _, ok := db.Driver().(*stdlib.Driver); !ok {
		return ErrNotNative
	}
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return ErrNotNative
		}
		return fn(c.Conn())
	})
}
