package testservices

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"testing"
	"time"

	// Registers the "pg" database/sql driver.
	_ "github.com/uptrace/bun/driver/pgdriver"
)

// adminTimeout bounds each statement run on the shared server; CREATE DATABASE
// copies template1 and can take a moment on a busy machine.
const adminTimeout = 30 * time.Second

// NewDatabase creates an empty database on the shared test Postgres and
// returns its URL. The database is dropped, with any connections still open
// to it, when the test and its subtests end.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := PostgresURL(t)

	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testservices: %v", err)
	}
	name := "soul_t_" + hex.EncodeToString(b[:])

	dbURL, err := databaseURL(admin, name)
	if err != nil {
		t.Fatalf("testservices: %s: %v", EnvDatabaseURL, err)
	}
	if err := adminExec(admin, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatalf("testservices: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := adminExec(admin, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Errorf("testservices: drop database %s: %v", name, err)
		}
	})
	return dbURL
}

// databaseURL returns serverURL pointing at database name, without TLS
// unless serverURL asks for it.
func databaseURL(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	u.RawPath = ""
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// adminExec runs one statement on its own connection: CREATE and DROP
// DATABASE cannot run inside a transaction, and tests must not share a pool
// that outlives them.
func adminExec(serverURL, query string) error {
	db, err := sql.Open("pg", serverURL)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if _, err := db.ExecContext(ctx, query); err != nil {
		return fmt.Errorf("%s: %w", query, err)
	}
	return nil
}
