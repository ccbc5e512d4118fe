package testservices_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/soulapp/soul/internal/testservices"
)

// PgBouncer reaches the test's database and pools by transaction: a client
// connection that has finished its transaction holds no server connection,
// so a second client gets the same Postgres backend while the first is
// still connected (in session pooling it would get another one).
func TestStartPgBouncer(t *testing.T) {
	dbURL := testservices.NewDatabase(t)
	bouncer := testservices.StartPgBouncer(t, dbURL)
	direct, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pooled, err := url.Parse(bouncer.URL())
	if err != nil || pooled.Host == direct.Host || pooled.Path != direct.Path {
		t.Fatalf("PgBouncer URL %s for database %s (%v)", bouncer.URL(), dbURL, err)
	}
	ctx := ctxTimeout(t)
	connect := func() *pgx.Conn {
		t.Helper()
		cfg, err := pgx.ParseConfig(bouncer.URL())
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("connect through PgBouncer: %v", err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	backend := func(c *pgx.Conn) (pid int, db string) {
		t.Helper()
		if err := c.QueryRow(ctx, "SELECT pg_backend_pid(), current_database()").Scan(&pid, &db); err != nil {
			t.Fatal(err)
		}
		return pid, db
	}
	first, second := connect(), connect()
	pid1, db := backend(first)
	if want := strings.TrimPrefix(direct.Path, "/"); db != want {
		t.Fatalf("PgBouncer reached database %q, want the test's (%s)", db, want)
	}
	pid2, _ := backend(second)
	if pid1 != pid2 {
		t.Errorf("two idle clients were served by backends %d and %d: not transaction pooling", pid1, pid2)
	}

	bouncer.Stop()
	if err := first.Ping(ctx); err == nil {
		t.Fatal("ping succeeded with PgBouncer stopped")
	}
}
