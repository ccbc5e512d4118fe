package database_test

import (
	"context"
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
