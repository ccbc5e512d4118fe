//go:build chaos

package chaos_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/soultest"
	"github.com/soulapp/soul/internal/testservices"
)

// `caddy reload` with a changed Caddyfile, ten times under load from
// keep-alive clients that resend a failed write with its Idempotency-Key:
// no 5xx, no write lost or stored twice, and the Postgres and Redis
// connections are the same ones before and after.
func TestReloadUnderLoad(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(soultest.RepoRoot(), "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	variant := func(timeout string) string {
		return strings.Replace(string(base), "soul_health\n", "soul_health {\n\t\t\tdatabase_timeout "+timeout+"\n\t\t}\n", 1)
	}
	dbURL := testservices.NewDatabase(t)
	redisURL := testservices.RedisURL(t)
	r := startReplica(t, variant("2s"), append([]string{"SECRET_KEY=" + soultest.RandomHex(32),
		"DATABASE_URL=" + dbURL, "REDIS_URL=" + redisURL}, noLimits...)...)
	r.waitServing(t)
	token := r.signIn(t)
	db := openSQL(t, dbURL)
	rc := testservices.RedisClient(t, redisURL)
	pgPids := func() map[string]bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rows, err := db.QueryContext(ctx, "SELECT pid::text FROM pg_stat_activity WHERE application_name = 'soul' AND datname = current_database()")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		pids := map[string]bool{}
		for rows.Next() {
			var p string
			_ = rows.Scan(&p)
			pids[p] = true
		}
		return pids
	}
	redisIDs := func() map[string]bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		list, err := rc.Do(ctx, rc.B().ClientList().Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, line := range strings.Split(list, "\n") {
			if !strings.Contains(" "+line+" ", " name=soul ") {
				continue
			}
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "id=") {
					ids[f] = true
				}
			}
		}
		return ids
	}

	var (
		stop                                    atomic.Bool
		sent, created, reads, serverErr, resets atomic.Int64
		retried, gaveUp                         atomic.Int64
		mu                                      sync.Mutex
		acked                                   []string
		wg                                      sync.WaitGroup
	)
	client := &http.Client{Timeout: 15 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 3000 && !stop.Load() && time.Now().Before(deadline); i++ {
				note := fmt.Sprintf("reload-%d-%d", w, i)
				// A write, resent with the same key after a transport error.
				for attempt := 0; attempt < 3; attempt++ {
					sent.Add(1)
					resp, err := client.Do(moodRequest(r.base, token, note))
					if err != nil {
						resets.Add(1)
						if attempt == 2 {
							gaveUp.Add(1)
						} else {
							retried.Add(1)
						}
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode >= 500 {
						serverErr.Add(1)
					} else if resp.StatusCode == http.StatusCreated {
						created.Add(1)
						mu.Lock()
						acked = append(acked, note)
						mu.Unlock()
					}
					break
				}
				// A read.
				req, _ := http.NewRequest(http.MethodGet, r.base+"/api/moods?limit=5", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				sent.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					resets.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					serverErr.Add(1)
				}
				reads.Add(1)
			}
		}(w)
	}

	time.Sleep(500 * time.Millisecond)
	pgBefore, redisBefore := pgPids(), redisIDs()
	const reloads = 10
	for i := 0; i < reloads; i++ {
		cfg := filepath.Join(r.confDir, "Caddyfile")
		if err := os.WriteFile(cfg, []byte(variant([]string{"1s", "3s"}[i%2])), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(soultest.Binary(t), "reload", "--config", cfg, "--adapter", "caddyfile", "--address", r.admin)
		cmd.Dir = soultest.RepoRoot()
		cmd.Env = r.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("caddy reload: %v\n%s", err, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	pgAfter, redisAfter := pgPids(), redisIDs()
	stop.Store(true)
	wg.Wait()

	notes := notesInDB(t, db)
	var lost, duplicated int64
	for _, n := range acked {
		switch c := notes[n]; {
		case c == 0:
			lost++
		case c > 1:
			duplicated++
		}
	}
	for _, c := range notes {
		if c > 1 {
			duplicated++
		}
	}
	kept := func(before, after map[string]bool) int {
		n := 0
		for k := range before {
			if after[k] {
				n++
			}
		}
		return n
	}
	figures(t, "reload", sent.Load(), serverErr.Load()+gaveUp.Load(), lost,
		fmt.Sprintf("reloads=%d created=%d reads=%d 5xx=%d transport_errors=%d resent_with_key=%d gave_up=%d duplicated=%d pg_conns=%d->%d(kept %d) redis_conns=%d->%d(kept %d)",
			reloads, created.Load(), reads.Load(), serverErr.Load(), resets.Load(), retried.Load(), gaveUp.Load(), duplicated,
			len(pgBefore), len(pgAfter), kept(pgBefore, pgAfter), len(redisBefore), len(redisAfter), kept(redisBefore, redisAfter)))
	if serverErr.Load() > 0 {
		t.Errorf("%d answers were 5xx during reloads", serverErr.Load())
	}
	if gaveUp.Load() > 0 {
		t.Errorf("%d writes failed three times in a row during reloads", gaveUp.Load())
	}
	if lost > 0 || duplicated > 0 {
		t.Errorf("writes: %d acknowledged but not stored, %d stored twice", lost, duplicated)
	}
	if created.Load() == 0 {
		t.Fatal("no write succeeded")
	}
	if len(pgBefore) == 0 || kept(pgBefore, pgAfter) == 0 {
		t.Errorf("Postgres connections %v before, %v after: the pool was not reused", pgBefore, pgAfter)
	}
	if len(redisBefore) == 0 || kept(redisBefore, redisAfter) == 0 {
		t.Errorf("Redis connections %v before, %v after: the client was not reused", redisBefore, redisAfter)
	}
}
