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

	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// Reloading the config under load fails no request that reached a handler,
// and the database pool and the Redis clients are reused rather than
// opened again: our connections to Postgres and to Redis do not grow with
// the number of reloads, and those from before are still there after.
//
// Connections cut at the moment of a swap are counted apart: Caddy gives
// each config its own SO_REUSEPORT socket on Linux, and a new connection
// the kernel queued on the old socket as it closes is reset at connect or
// closed before an answer (EOF): a known kernel behaviour, before any
// handler, not a lost request of ours. A worker has one connection at a
// time, kept alive, so a reload can cut at most one per worker; runs here
// cut 0 to 9 over 10 reloads with 4 workers.
func TestReloadKeepsConnections(t *testing.T) {
	redis := testservices.StartRedis(t)
	s := soultest.Start(t, soultest.Options{Database: soultest.Postgres, RedisURL: redis.URL()})
	rdb := testservices.RedisClient(t, redis.URL())
	// redisConns returns the ids of our connections to Redis by client
	// name: the limiter's and health check's ("soul") and the certificate
	// storage's ("soul-storage").
	redisConns := func() map[string]map[string]bool {
		list, err := rdb.Do(context.Background(), rdb.B().ClientList().Build()).ToString()
		if err != nil {
			t.Fatalf("CLIENT LIST: %v", err)
		}
		out := map[string]map[string]bool{"soul": {}, "soul-storage": {}}
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			f := map[string]string{}
			for _, kv := range strings.Fields(line) {
				k, v, _ := strings.Cut(kv, "=")
				f[k] = v
			}
			if ids, ok := out[f["name"]]; ok {
				ids[f["id"]] = true
			}
		}
		return out
	}
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

	const workers, reloads = 4, 10
	var (
		stop     atomic.Bool
		sent     atomic.Int64
		resets   atomic.Int64
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	// One kept-alive connection per worker: a worker dials again only when
	// a reload closes its connection.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				sent.Add(1)
				resp, err := client.Get(s.BaseURL + "/healthz")
				if err != nil {
					if resets.Add(1) <= 3 {
						t.Logf("request failed: %v", err)
					}
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

	before, redisBefore := conns(), redisConns()
	for i := 0; i < reloads; i++ {
		// A real change each time, so Caddy does not skip the reload.
		timeout := []string{"1s", "2s"}[i%2]
		cfg := strings.Replace(string(base), "soul_health\n", "soul_health {\n\t\t\tdatabase_timeout "+timeout+"\n\t\t}\n", 1)
		if cfg == string(base) {
			t.Fatal("the Caddyfile has no soul_health line to vary")
		}
		s.Reload(cfg)
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	after, redisAfter := conns(), redisConns()

	t.Logf("%d requests during %d reloads: %d answered other than 200, %d connections reset; Postgres connections %d before, %d after; Redis connections %d+%d before, %d+%d after",
		sent.Load(), reloads, failures.Load(), resets.Load(), len(before), len(after),
		len(redisBefore["soul"]), len(redisBefore["soul-storage"]), len(redisAfter["soul"]), len(redisAfter["soul-storage"]))
	if n := resets.Load(); n > workers*reloads {
		t.Errorf("%d connections reset over %d reloads, more than one per worker per reload", n, reloads)
	}
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
	for name, ids := range redisBefore {
		if len(ids) == 0 {
			t.Errorf("no Redis connection named %q before the reloads: is the client name right?", name)
		}
		if got := redisAfter[name]; len(got) > len(ids) {
			t.Errorf("Redis connections named %q grew from %d to %d over %d reloads", name, len(ids), len(got), reloads)
		}
		for id := range ids {
			if !redisAfter[name][id] {
				t.Errorf("Redis connection %s named %q did not survive the reloads: the client was not reused", id, name)
			}
		}
	}
}
