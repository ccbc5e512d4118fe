package soultest

import (
	"context"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/limiter"
)

// WantStatus fails the test unless resp has the status.
func WantStatus(t testing.TB, resp *Response, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, resp.Body)
	}
}

// WantProblem checks a problem+json answer's status and code.
func WantProblem(t testing.TB, resp *Response, status int, code string) {
	t.Helper()
	WantStatus(t, resp, status)
	if p := resp.Problem(t); p.Code != code {
		t.Fatalf("%s %s: code %q, want %q; body %s", resp.Request.Method, resp.Request.URL, p.Code, code, resp.Body)
	}
}

// OpenDB opens the server's database beside it, for arranging rows and
// checking what was written.
func (s *Server) OpenDB(t testing.TB) *bun.DB {
	t.Helper()
	db, _, err := database.Open(context.Background(), database.Config{URL: s.DatabaseURL, SQLitePath: s.SQLitePath}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Count counts a table's rows matching where.
func Count(t testing.TB, db *bun.DB, table, where string, args ...any) int {
	t.Helper()
	n, err := db.NewSelect().TableExpr(table).Where(where, args...).Count(context.Background())
	if err != nil {
		t.Fatalf("counting %s: %v", table, err)
	}
	return int(n)
}

// LimiterKeys is a limiter with the hash key a server derives from secret,
// only to name the Redis keys that server's limits use (StorageKey), so a
// test can look for them or make sure nothing else is there.
func LimiterKeys(t testing.TB, secret string) *limiter.Limiter {
	t.Helper()
	hashKey, err := auth.DeriveKey([]byte(secret), auth.LabelRateLimitKeys)
	if err != nil {
		t.Fatal(err)
	}
	l, err := limiter.New(limiter.Options{HashKey: hashKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}
