//go:build chaos

package chaos_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/problem"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// dialTimeout is how long internal/database waits for a connection to
// Postgres (pgdriver.WithDialTimeout in openPostgres); its reads wait 10s.
// On loopback a stopped Postgres refuses a connection at once and a
// starting or stopping one says so at once, so a 503 during an outage waits
// for no timeout and takes milliseconds: one that takes dialTimeout or
// more waited for a timeout, which is a hang, not a slow answer.
const dialTimeout = 3 * time.Second

// Postgres stops and starts again, then crashes and starts again, while
// moods are written at a steady rate: every 201 a client received is in
// the database afterwards; every other answer during an outage is a 503
// problem with Retry-After, answered fast (below dialTimeout: none hangs,
// let alone past the client's timeout, which would be a failure); and the
// binary serves again after each outage without a restart.
func TestPostgresRestart(t *testing.T) {
	pg := testservices.StartPostgres(t)
	durableCommits(t, pg.URL())
	r := startReplica(t, "", append([]string{"SECRET_KEY=" + soultest.RandomHex(32), "DATABASE_URL=" + pg.URL()}, noLimits...)...)
	r.waitServing(t)
	token := r.signIn(t)

	const (
		workers  = 4
		interval = 25 * time.Millisecond // per worker: about 160 writes/s in all
		maxSends = 6000                  // per worker, whatever the clock says
	)
	var (
		stop             atomic.Bool
		sent, created    atomic.Int64
		unavailable, bad atomic.Int64
		slowest503       maxDuration
		mu               sync.Mutex
		ids              []string
		wg               sync.WaitGroup
		client           = &http.Client{Timeout: 15 * time.Second}
		deadline         = time.Now().Add(120 * time.Second)
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
						t.Errorf("POST /api/moods: %v after %v", err, elapsed)
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
					slowest503.observe(elapsed)
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

	// One reader goes round the moods' read routes (the list, the change
	// feed, the summary) at the same time: each answer is a 200, or a 503
	// problem with Retry-After while Postgres is away, like the writes.
	reads := []string{"/api/moods?limit=20", "/api/moods/changes?since=&limit=50",
		"/api/moods/summary?from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z&bucket=month&tz=Europe/London"}
	var readOK, read503 atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load() && time.Now().Before(deadline); i++ {
			path := reads[i%len(reads)]
			req, _ := http.NewRequest(http.MethodGet, r.base+path, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			sent.Add(1)
			start := time.Now()
			resp, err := client.Do(req)
			elapsed := time.Since(start)
			if err != nil {
				if bad.Add(1) <= 3 {
					t.Errorf("GET %s: %v after %v", path, err, elapsed)
				}
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK:
				readOK.Add(1)
			case resp.StatusCode == http.StatusServiceUnavailable &&
				resp.Header.Get("Content-Type") == problem.ContentType &&
				resp.Header.Get("Retry-After") != "":
				read503.Add(1)
				slowest503.observe(elapsed)
			default:
				if bad.Add(1) <= 3 {
					t.Errorf("GET %s: %d %s %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
			}
			time.Sleep(interval)
		}
	}()

	// recovered waits until writes succeed again, on the same process.
	recovered := func() bool {
		for i := 0; i < 300; i++ {
			before := created.Load()
			time.Sleep(100 * time.Millisecond)
			if created.Load() > before+workers {
				return true
			}
		}
		return false
	}
	outages := []struct {
		name string
		end  func()
	}{
		{"stop", pg.Stop}, // a clean restart: fast shutdown closes every connection
		{"kill", pg.Kill}, // a crash: no checkpoint, recovery from the WAL at the next start
	}
	var report []string
	time.Sleep(2 * time.Second)
	for _, o := range outages {
		before := unavailable.Load()
		o.end()
		began := time.Now()
		time.Sleep(4 * time.Second)
		pg.Start()
		downFor := time.Since(began)
		ok := recovered()
		seen := unavailable.Load() - before
		report = append(report, fmt.Sprintf("%s: down=%s 503s=%d recovered=%t", o.name, downFor.Round(100*time.Millisecond), seen, ok))
		if !ok {
			t.Errorf("Postgres %s: no write succeeded after it came back:\n%s", o.name, tail(r.log.String(), 20))
		}
		if seen == 0 {
			t.Errorf("Postgres %s: no request saw the outage: the test did not test it", o.name)
		}
	}
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()

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
	figures(t, "postgres-restart", sent.Load(), bad.Load(), lost,
		fmt.Sprintf("created=%d unavailable_503=%d reads_ok=%d reads_503=%d slowest_503=%s (bound %s) outages=[%s]",
			created.Load(), unavailable.Load(), readOK.Load(), read503.Load(), slowest503.get().Round(time.Millisecond), dialTimeout, strings.Join(report, "; ")))
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes are not in the database", lost, len(ids))
	}
	if bad.Load() > 0 {
		t.Errorf("%d answers were neither a 201 (200 for a read) nor a 503 problem with Retry-After; the binary's errors:\n%s",
			bad.Load(), linesWith(r.log.String(), `"status":500`, 10))
	}
	if readOK.Load() == 0 || read503.Load() == 0 {
		t.Errorf("reads: %d answered, %d 503 during the outages; the reads did not see both", readOK.Load(), read503.Load())
	}
	if slowest503.get() >= dialTimeout {
		t.Errorf("the slowest 503 took %v, not below the %v connect timeout: a request waited on a timeout during the outage", slowest503.get(), dialTimeout)
	}
}

// durableCommits turns synchronous_commit back on, as every production
// Postgres has it: the test servers run without it for speed, and then a
// crash loses commits already acknowledged (up to three times
// wal_writer_delay, as Postgres documents), which is the server's setting
// and not the API losing writes. fsync stays off: it matters only when
// the machine, not the server process, goes down.
func durableCommits(t *testing.T, url string) {
	t.Helper()
	db := openSQL(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, q := range []string{"ALTER SYSTEM SET synchronous_commit = on", "SELECT pg_reload_conf()"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Every session applies the reloaded file before its next statement,
	// once the postmaster has passed the reload on.
	for {
		var v string
		if err := db.QueryRowContext(ctx, "SHOW synchronous_commit").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v == "on" {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("synchronous_commit is %q after the reload", v)
		}
		time.Sleep(50 * time.Millisecond)
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

// linesWith returns the last n lines of the log s that hold substr.
func linesWith(s, substr string, n int) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return tail(strings.Join(out, "\n"), n)
}
