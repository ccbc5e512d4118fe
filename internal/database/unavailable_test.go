package database_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/testservices"
)

// Errors from a real Postgres: the ones that mean it cannot serve are
// Unavailable (a client may retry: 503), the ones that refuse a statement
// are not (a fault of ours: 500).
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	open := func(t *testing.T, url string) *bun.DB {
		t.Helper()
		db, _, err := database.Open(ctx, database.Config{URL: url, MaxOpenConns: 1}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	query := func(db *bun.DB, q string) error {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := db.ExecContext(qctx, q)
		return err
	}

	t.Run("refused statements", func(t *testing.T) {
		db := open(t, testservices.NewDatabase(t))
		if err := query(db, "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"SELEC 1", "INSERT INTO t VALUES (1), (1)", "SELECT 1/0", "SELECT * FROM missing"} {
			err := query(db, q)
			if err == nil {
				t.Fatalf("%s: no error", q)
			}
			if database.Unavailable(err) {
				t.Errorf("%s: %v counted as the database being unavailable", q, err)
			}
		}
	})

	t.Run("statement timeout", func(t *testing.T) {
		db := open(t, testservices.NewDatabase(t))
		if err := query(db, "SET statement_timeout = '20ms'"); err != nil {
			t.Fatal(err)
		}
		if err := query(db, "SELECT pg_sleep(2)"); !database.Unavailable(err) {
			t.Errorf("a statement timeout (%v) is not counted as unavailable", err)
		}
	})

	t.Run("session terminated", func(t *testing.T) {
		url := testservices.NewDatabase(t)
		db, admin := open(t, url), open(t, url)
		var pid int
		if err := db.NewRaw("SELECT pg_backend_pid()").Scan(ctx, &pid); err != nil {
			t.Fatal(err)
		}
		if err := query(admin, fmt.Sprintf("SELECT pg_terminate_backend(%d)", pid)); err != nil {
			t.Fatal(err)
		}
		// The next statement on the killed session gets 57P01 (FATAL) or
		// finds the connection closed; either way the database failed.
		err := query(db, "SELECT 1")
		if err == nil {
			t.Skip("the pool replaced the terminated connection before the statement")
		}
		if !database.Unavailable(err) {
			t.Errorf("a terminated session (%v) is not counted as unavailable", err)
		}
	})

	t.Run("transaction on a terminated session", func(t *testing.T) {
		url := testservices.NewDatabase(t)
		db, admin := open(t, url), open(t, url)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		var pid int
		if err := tx.NewRaw("SELECT pg_backend_pid()").Scan(ctx, &pid); err != nil {
			t.Fatal(err)
		}
		if err := query(admin, fmt.Sprintf("SELECT pg_terminate_backend(%d)", pid)); err != nil {
			t.Fatal(err)
		}
		// The statement meets the terminated session; after it, pgx has
		// closed the connection, and the commit finds it closed
		// (pgconn.ErrConnClosed or the closed transaction).
		_, execErr := tx.ExecContext(ctx, "SELECT 1")
		commitErr := tx.Commit()
		for what, err := range map[string]error{"statement": execErr, "commit": commitErr} {
			if err == nil {
				t.Fatalf("the %s on a terminated session succeeded", what)
			}
			if !database.Unavailable(err) {
				t.Errorf("the %s on a terminated session (%v) is not counted as unavailable", what, err)
			}
		}
	})

	t.Run("server stopped", func(t *testing.T) {
		pg := testservices.StartPostgres(t)
		db := open(t, pg.URL())
		if err := query(db, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		pg.Stop()
		err := query(db, "SELECT 1")
		if err == nil {
			t.Fatal("a query on a stopped server succeeded")
		}
		if !database.Unavailable(err) {
			t.Errorf("a stopped server (%v) is not counted as unavailable", err)
		}
	})

	t.Run("no error or a caller that gave up", func(t *testing.T) {
		if database.Unavailable(nil) {
			t.Error("nil is unavailable")
		}
		if database.Unavailable(fmt.Errorf("query: %w", context.Canceled)) {
			t.Error("a canceled caller is the database failing")
		}
		if database.Unavailable(errors.New("mood: not found")) {
			t.Error("a plain error is the database failing")
		}
	})
}
