//go:build chaos

package chaos_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/problem"
	"github.com/soulapp/soul/internal/soultest"
	"github.com/soulapp/soul/internal/testservices"
)

// Postgres stops and starts again while moods are written at a steady
// rate: every 201 a client received is in the database afterwards, every
// request during the outage is a 503 problem with Retry-After, and the
// binary serves again without a restart.
func TestPostgresRestart(t *testing.T) {
	pg := testservices.StartPostgres(t)
	r := startReplica(t, "", append([]string{"SECRET_KEY=" + soultest.RandomHex(32), "DATABASE_URL=" + pg.URL()}, noLimits...)...)
	r.waitServing(t)
	token := r.signIn(t)

	const (
		workers  = 4
		interval = 25 * time.Millisecond // per worker: about 160 writes/s in all
		maxSends = 4000                  // per worker, whatever the clock says
	)
	var (
		stop             atomic.Bool
		sent, created    atomic.Int64
		unavailable, bad atomic.Int64
		maxFailNanos     atomic.Int64
		mu               sync.Mutex
		ids              []string
		wg               sync.WaitGroup
		client           = &http.Client{Timeout: 15 * time.Second}
		deadline         = time.Now().Add(90 * time.Second)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < maxSends && !stop.Load() && time.Now().Before(deadline); i++ {
				sent.Add(1)
				start := time.Now()
				resp, err := client.Do(moodRequest(r.base, token, fmt.Sprintf("pg-%d-%d", w, i)))
				elapsed := time.Since(start)
				if err != nil {
					if bad.Add(1) <= 3 {
						t.Errorf("POST /api/moods: %v", err)
					}
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusCreated:
					created.Add(1)
					mu.Lock()
					ids = append(ids, moodID(body))
					mu.Unlock()
				case resp.StatusCode == http.StatusServiceUnavailable &&
					resp.Header.Get("Content-Type") == problem.ContentType &&
					resp.Header.Get("Retry-After") != "":
					unavailable.Add(1)
					for {
						m := maxFailNanos.Load()
						if int64(elapsed) <= m || maxFailNanos.CompareAndSwap(m, int64(elapsed)) {
							break
						}
					}
				default:
					if bad.Add(1) <= 3 {
						t.Errorf("POST /api/moods: %d %s %q (Retry-After %q)", resp.StatusCode,
							resp.Header.Get("Content-Type"), body, resp.Header.Get("Retry-After"))
					}
				}
				time.Sleep(interval)
			}
		}(w)
	}

	time.Sleep(2 * time.Second)
	pg.Stop()
	outage := time.Now()
	time.Sleep(4 * time.Second)
	pg.Start()
	downFor := time.Since(outage)
	// Recovered: a write succeeds again, on the same process.
	recovered := false
	for i := 0; i < 300 && !recovered; i++ {
		before := created.Load()
		time.Sleep(100 * time.Millisecond)
		recovered = created.Load() > before+workers
	}
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()

	if !recovered {
		t.Errorf("no write succeeded after Postgres came back:\n%s", tail(r.log.String(), 20))
	}
	select {
	case <-r.done:
		t.Fatalf("the binary exited:\n%s", tail(r.log.String(), 20))
	default:
	}
	stored := idsInDB(t, openSQL(t, pg.URL()))
	lost := int64(0)
	for _, id := range ids {
		if !stored[id] {
			lost++
		}
	}
	figures(t, "postgres-restart", sent.Load(), unavailable.Load()+bad.Load(), lost,
		fmt.Sprintf("created=%d unavailable_503=%d other=%d outage=%s max_503_latency=%s",
			created.Load(), unavailable.Load(), bad.Load(), downFor.Round(100*time.Millisecond),
			time.Duration(maxFailNanos.Load()).Round(time.Millisecond)))
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes are not in the database", lost, len(ids))
	}
	if unavailable.Load() == 0 {
		t.Error("no request saw the outage: the test did not test it")
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
