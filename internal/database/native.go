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

// statementModeKey is where each connection Open makes records how
// Native's queries go on it (Config.PreparedStatements), in pgconn's
// per-connection custom data: the mode belongs to the opened database,
// so two databases opened with different settings never share one.
const statementModeKey = "soul.statement_mode"

// StatementMode is how Native's queries reach Postgres on c; pass it as
// the first argument of c.Query or c.QueryRow.
//
// With prepared statements on (the default), a statement is prepared once
// per connection and then only bound and executed, with binary results, so
// Postgres parses and plans the hot queries once rather than on every
// request. With them off, pgx caches only the statement's description
// (parameter and result types, learnt once per connection) and sends each
// query as the unnamed statement, parse, bind and execute in one round
// trip: nothing outlives the round trip on the server connection, which is
// what PgBouncer before 1.21 in transaction pooling mode requires (it may
// hand the next query to another server connection, where a statement
// prepared earlier does not exist). pgx's describe-then-execute mode is not
// used: its two round trips may land on two server connections.
func StatementMode(c *pgx.Conn) pgx.QueryExecMode {
	if m, ok := c.PgConn().CustomData()[statementModeKey].(pgx.QueryExecMode); ok {
		return m
	}
	return pgx.QueryExecModeCacheStatement
}

// statementMode is the mode Config selects.
func (c Config) statementMode() pgx.QueryExecMode {
	if c.NoPreparedStatements {
		return pgx.QueryExecModeCacheDescribe
	}
	return pgx.QueryExecModeCacheStatement
}

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
