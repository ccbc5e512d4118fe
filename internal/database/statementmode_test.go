package database_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/testservices"
)

// nativeQuery runs one parameterised query through Native, as the hot
// paths do.
func nativeQuery(ctx context.Context, db *bun.DB) (mode pgx.QueryExecMode, err error) {
	err = database.Native(ctx, db, func(c *pgx.Conn) error {
		mode = database.StatementMode(c)
		var n int
		return c.QueryRow(ctx, "SELECT $1::int + 1", mode, 41).Scan(&n)
	})
	return mode, err
}

// preparedOnServer counts the statements prepared on db's one connection.
func preparedOnServer(t *testing.T, ctx context.Context, db *bun.DB) int {
	t.Helper()
	var n int
	if err := db.NewRaw("SELECT count(*) FROM pg_prepared_statements").Scan(ctx, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// DATABASE_PREPARED_STATEMENTS picks how Native's queries travel: prepared
// once per connection by default, unnamed (nothing left on the server
// connection) when off; a database opened one way does not change another
// opened the other way, and the two are different pools.
func TestStatementMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := testservices.NewDatabase(t)
	for _, tc := range []struct {
		off      bool
		mode     pgx.QueryExecMode
		prepared int
	}{{false, pgx.QueryExecModeCacheStatement, 1}, {true, pgx.QueryExecModeCacheDescribe, 0}} {
		db, _, err := database.Open(ctx, database.Config{URL: url, MaxOpenConns: 1, NoPreparedStatements: tc.off}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		mode, err := nativeQuery(ctx, db)
		if err != nil {
			t.Fatalf("NoPreparedStatements=%v: %v", tc.off, err)
		}
		if mode != tc.mode {
			t.Errorf("NoPreparedStatements=%v: mode %v, want %v", tc.off, mode, tc.mode)
		}
		if got := preparedOnServer(t, ctx, db); got != tc.prepared {
			t.Errorf("NoPreparedStatements=%v: %d statements prepared on the connection, want %d", tc.off, got, tc.prepared)
		}
	}
	on, off := database.Config{URL: url}, database.Config{URL: url, NoPreparedStatements: true}
	if on.Key() == off.Key() {
		t.Error("the two statement modes share one pool key")
	}
}

// Behind PgBouncer 1.18 in transaction pooling mode, the next query of a
// client may go to another server connection. A statement prepared on the
// first is then missing (which is why the setting exists); with prepared
// statements off the query works on any server connection.
//
// The test makes the switch certain: one query runs on PgBouncer's only
// server connection, another client then holds that one in an open
// transaction, and the next query gets a new server connection.
func TestStatementModeBehindPgBouncer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bouncer := testservices.StartPgBouncer(t, testservices.NewDatabase(t))
	for _, off := range []bool{false, true} {
		db, _, err := database.Open(ctx, database.Config{URL: bouncer.URL(), MaxOpenConns: 1, NoPreparedStatements: off}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := nativeQuery(ctx, db); err != nil {
			t.Fatalf("NoPreparedStatements=%v: first query: %v", off, err)
		}

		cfg, err := pgx.ParseConfig(bouncer.URL())
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		holder, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := holder.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}

		_, err = nativeQuery(ctx, db)
		switch {
		case off && err != nil:
			t.Errorf("prepared statements off: query on another server connection: %v", err)
		case !off && (err == nil || !strings.Contains(err.Error(), "does not exist")):
			t.Errorf("prepared statements on: query on another server connection gave %v, want the prepared statement missing", err)
		}
		_ = tx.Rollback(ctx)
		_ = holder.Close(ctx)
	}
}

// The cost of the setting: one parameterised query through Native, on
// Postgres itself with each mode and through PgBouncer with prepared
// statements off.
func BenchmarkStatementMode(b *testing.B) {
	ctx := context.Background()
	direct := testservices.NewDatabase(b)
	bouncer := testservices.StartPgBouncer(b, direct).URL()
	for _, tc := range []struct {
		name string
		cfg  database.Config
	}{
		{"postgres/prepared", database.Config{URL: direct, MaxOpenConns: 1}},
		{"postgres/unnamed", database.Config{URL: direct, MaxOpenConns: 1, NoPreparedStatements: true}},
		{"pgbouncer/unnamed", database.Config{URL: bouncer, MaxOpenConns: 1, NoPreparedStatements: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			db, _, err := database.Open(ctx, tc.cfg, 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			for i := 0; i < b.N; i++ {
				if _, err := nativeQuery(ctx, db); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
