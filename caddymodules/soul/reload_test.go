package soul_test

import (
	"context"
	"database/sql"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/uptrace/bun/driver/pgdriver"

	"github.com/soulapp/soul/internal/soultest"
)

// Reloading the config under load fails no request that reached a handler,
// and the database pool is reused rather than opened again: the count of
// our connections to Postgres does not grow with the number of reloads.
//
// Connections the kernel resets at the moment of a swap are counted apart:
// Caddy gives each config its own SO_REUSEPORT socket on Linux, and a
// connection still in the old socket's accept queue when it closes is
// reset (a known kernel behaviour, not a lost request of ours).
func TestReloadKeepsConnections(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.Postgres, Redis: true})
	base, err := os.ReadFile(filepath.Join(soultest.RepoRoot(), "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("pg", s.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	// conns returns the backend pids of our connections.
	conns := func() map[int]bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rows, err := admin.QueryContext(ctx,
			"SELECT pid FROM pg_stat_activity WHERE application_name = 'soul' AND datname = current_database()")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		pids := map[int]bool{}
		for rows.Next() {
			var pid int
			if err := rows.Scan(&pid); err != nil {
				t.Fatal(err)
			}
			pids[pid] = true
		}
		return pids
	}

	var (
		stop     atomic.Bool
		sent     atomic.Int64
		resets   atomic.Int64
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				sent.Add(1)
				resp, err := client.Get(s.BaseURL + "/healthz")
				if err != nil {
					resets.Add(1)
					continue
				}
				if resp.StatusCode != http.StatusOK {
					if failures.Add(1) <= 3 {
						t.Logf("request answered %d", resp.StatusCode)
					}
				}
				resp.Body.Close()
			}
		}()
	}

	const reloads = 10
	before := conns()
	for i := 0; i < reloads; i++ {
		// A real change each time, so Caddy does not skip the reload.
		timeout := []string{"1s", "2s"}[i%2]
		cfg := strings.Replace(string(base), "soul_health\n", "soul_health {\n\t\t\tdatabase_timeout "+timeout+"\n\t\t}\n", 1)
		s.Reload(cfg)
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	after := conns()

	t.Logf("%d requests during %d reloads: %d answered other than 200, %d connections reset; Postgres connections %d before, %d after",
		sent.Load(), reloads, failures.Load(), resets.Load(), len(before), len(after))
	if failures.Load() != 0 {
		t.Errorf("%d of %d requests were answered other than 200 during reloads", failures.Load(), sent.Load())
	}
	if sent.Load() == 0 {
		t.Fatal("no requests sent")
	}
	// A pool opened per reload would leave connections behind for each
	// (growth) or, closed properly, would not have kept the old ones.
	if len(after) > len(before)+2 {
		t.Errorf("Postgres connections grew from %d to %d over %d reloads", len(before), len(after), reloads)
	}
	kept := 0
	for pid := range before {
		if after[pid] {
			kept++
		}
	}
	if len(before) == 0 || kept == 0 {
		t.Errorf("none of the %d connections from before the reloads survived them: the pool was not reused", len(before))
	}
}
