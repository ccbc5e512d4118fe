package migrations_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/migrations"
)

var tables = []string{"users", "sessions", "otp_challenges", "moods", "idempotency_keys"}

func open(t *testing.T, kind database.Kind) *bun.DB {
	t.Helper()
	cfg := database.Config{SQLitePath: filepath.Join(t.TempDir(), "soul.db")}
	if kind == database.Postgres {
		cfg.URL = testservices.NewDatabase(t)
	}
	db, _, err := database.Open(context.Background(), cfg, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func tableExists(t *testing.T, db *bun.DB, name string) bool {
	t.Helper()
	q := "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
	if db.Dialect().Name().String() == "sqlite" {
		q = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	}
	var n int
	if err := db.NewRaw(q, name).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func TestUpDownUp(t *testing.T) {
	for _, kind := range []database.Kind{database.SQLite, database.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			db := open(t, kind)
			r, err := migrations.New(db)
			if err != nil {
				t.Fatal(err)
			}
			check := func(step string, want bool) {
				t.Helper()
				for _, table := range tables {
					if got := tableExists(t, db, table); got != want {
						t.Fatalf("after %s: table %s exists = %v, want %v", step, table, got, want)
					}
				}
			}

			applied, err := r.Up(ctx)
			if err != nil || len(applied) == 0 {
				t.Fatalf("up: %v %v", applied, err)
			}
			check("up", true)
			if again, err := r.Up(ctx); err != nil || len(again) != 0 {
				t.Fatalf("second up applied %v, %v", again, err)
			}

			rolled, err := r.Down(ctx)
			if err != nil || len(rolled) != len(applied) {
				t.Fatalf("down: %v %v", rolled, err)
			}
			check("down", false)
			st, err := r.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range st {
				if m.Applied {
					t.Errorf("%s still applied after down", m.Name)
				}
			}

			if _, err := r.Up(ctx); err != nil {
				t.Fatalf("up again: %v", err)
			}
			check("up again", true)
		})
	}
}

// Replicas starting together: the advisory lock lets one apply the
// migrations while the others wait and then find nothing to do, on
// Postgres itself and through PgBouncer in transaction pooling mode, where
// a session-level lock would be left on whichever server connection took
// it. Every migration is recorded once and no advisory lock outlives the
// run.
func TestConcurrentUpOnPostgres(t *testing.T) {
	for _, via := range []string{"direct", "pgbouncer"} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			direct := testservices.NewDatabase(t)
			cfg := database.Config{URL: direct}
			if via == "pgbouncer" {
				cfg = database.Config{URL: testservices.StartPgBouncer(t, direct).URL(), NoPreparedStatements: true}
			}
			concurrentUp(t, cfg, direct)
		})
	}
}

func concurrentUp(t *testing.T, cfg database.Config, direct string) {
	const replicas = 4
	// A lock left held would make the others wait forever: fail instead.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied [][]string
		start   = make(chan struct{})
	)
	for i := 0; i < replicas; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, _, err := database.Open(ctx, cfg, 10*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			defer db.Close()
			r, err := migrations.New(db)
			if err != nil {
				t.Error(err)
				return
			}
			<-start
			names, err := r.Up(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			applied = append(applied, names)
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	winners := 0
	for _, names := range applied {
		if len(names) > 0 {
			winners++
		}
	}
	if winners != 1 || len(applied) != replicas {
		t.Fatalf("%d of %d replicas applied migrations (%v), want exactly 1", winners, len(applied), applied)
	}

	// Checked on Postgres itself, past any pooler.
	db, _, err := database.Open(ctx, database.Config{URL: direct}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var recorded, distinct, locks int
	if err := db.NewRaw("SELECT count(*), count(DISTINCT name) FROM soul_migrations").Scan(ctx, &recorded, &distinct); err != nil {
		t.Fatal(err)
	}
	if recorded != len(applied[0])+len(applied[1])+len(applied[2])+len(applied[3]) || recorded != distinct {
		t.Errorf("soul_migrations holds %d rows, %d names; applied %v", recorded, distinct, applied)
	}
	if err := db.NewRaw("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = current_database()").
		Scan(ctx, &locks); err != nil {
		t.Fatal(err)
	}
	if locks != 0 {
		t.Errorf("%d advisory locks still held after the run", locks)
	}
}
