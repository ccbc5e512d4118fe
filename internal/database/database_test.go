package database_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/testservices"
)

// The Postgres pool is as large as asked, 20 by default, and a new size
// is a new pool key, so a reload with another size opens a pool of it.
func TestPostgresPoolSize(t *testing.T) {
	url := testservices.NewDatabase(t)
	for _, tc := range []struct {
		asked, want int
	}{{0, database.DefaultMaxOpenConns}, {3, 3}} {
		cfg := database.Config{URL: url, MaxOpenConns: tc.asked}
		db, _, err := database.Open(context.Background(), cfg, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := db.DB.Stats().MaxOpenConnections; got != tc.want {
			t.Errorf("MaxOpenConns %d: pool of %d, want %d", tc.asked, got, tc.want)
		}
		_ = db.Close()
	}
	plain, three := database.Config{URL: url}, database.Config{URL: url, MaxOpenConns: 3}
	if plain.Key() == three.Key() {
		t.Error("two pool sizes share one key")
	}
	if asked := (database.Config{URL: url, MaxOpenConns: database.DefaultMaxOpenConns}); plain.Key() != asked.Key() {
		t.Error("the default size and the same size asked for have different keys")
	}
}

// DATABASE_URL in the forms of Railway, the earlier stack and libpq is
// read as one postgres:// URL; anything else is refused with a reason
// that never repeats the URL (it holds the password).
func TestDatabaseURL(t *testing.T) {
	const password = "s3cr3t-pw"
	for _, tc := range []struct {
		raw, normal, problem string
	}{
		{"postgres://soul:" + password + "@db:5432/soul", "postgres://soul:" + password + "@db:5432/soul", ""},
		{"postgresql://soul:" + password + "@db:5432/soul", "postgres://soul:" + password + "@db:5432/soul", ""},
		{"postgresql+psycopg2://soul:" + password + "@db:5432/soul", "postgres://soul:" + password + "@db:5432/soul", ""},
		{"postgresql+psycopg://soul@db/soul", "postgres://soul@db/soul", ""},
		{"  postgres://soul@db/soul?sslmode=require\n", "postgres://soul@db/soul?sslmode=require", ""},
		{"postgres://soul@[::1]:5432/soul?sslmode=verify-full", "postgres://soul@[::1]:5432/soul?sslmode=verify-full", ""},
		{"mysql://soul:" + password + "@db/soul", "mysql://soul:" + password + "@db/soul", `must start with postgres://, postgresql:// or postgresql+psycopg2:// (got scheme "mysql")`},
		{"db:5432/soul", "db:5432/soul", "must start with postgres://"},
		{"", "", "must start with postgres://"},
		{"postgres://soul:" + password + "@db:port/soul", "postgres://soul:" + password + "@db:port/soul", "is not a valid URL"},
		{"postgres://soul@db:5432/soul%zz", "postgres://soul@db:5432/soul%zz", "is not a valid URL"},
		{"postgres://soul@:5432/soul", "postgres://soul@:5432/soul", "has no host"},
		{"postgres://soul@db:5432", "postgres://soul@db:5432", "has no database name"},
		{"postgres://soul@db/", "postgres://soul@db/", "has no database name"},
		{"postgres://db/soul", "postgres://db/soul", "has no user name"},
		{"postgres://soul@db/soul?sslmode=maybe", "postgres://soul@db/soul?sslmode=maybe", `has an unknown sslmode "maybe"`},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			if got := database.NormalizeURL(tc.raw); got != tc.normal {
				t.Errorf("NormalizeURL = %q, want %q", got, tc.normal)
			}
			err := database.ValidateURL(tc.raw)
			switch {
			case tc.problem == "" && err != nil:
				t.Fatalf("ValidateURL refused it: %v", err)
			case tc.problem != "" && err == nil:
				t.Fatalf("ValidateURL accepted it, want %q", tc.problem)
			case err != nil && !strings.Contains(err.Error(), "DATABASE_URL "+tc.problem):
				t.Fatalf("ValidateURL = %q, want %q", err, "DATABASE_URL "+tc.problem)
			case err != nil && strings.Contains(err.Error(), password):
				t.Fatalf("ValidateURL echoes the password: %q", err)
			}
		})
	}
}
