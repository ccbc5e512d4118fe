package soulratelimit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/soulapp/soul/internal/soultest"
	"github.com/soulapp/soul/internal/testservices"
)

func TestMain(m *testing.M) {
	code := m.Run()
	soultest.RemoveBinary()
	os.Exit(code)
}

// replica is one running binary.
type replica struct {
	base   string
	log    *soultest.LogBuffer
	client *http.Client
}

// startReplica runs the built binary on the production Caddyfile with its
// own port, admin endpoint and SQLite file; env adds variables.
func startReplica(t *testing.T, env ...string) *replica {
	t.Helper()
	bin := soultest.Binary(t)
	port := soultest.FreePort(t)
	r := &replica{
		base:   "http://127.0.0.1:" + strconv.Itoa(port),
		log:    &soultest.LogBuffer{},
		client: &http.Client{Timeout: 10 * time.Second},
	}
	cmd := exec.Command(bin, "run", "--config", "Caddyfile", "--adapter", "caddyfile")
	cmd.Dir = soultest.RepoRoot()
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"XDG_CONFIG_HOME=" + t.TempDir(),
		"XDG_DATA_HOME=" + t.TempDir(),
		"ADMIN_ADDRESS=127.0.0.1:" + strconv.Itoa(soultest.FreePort(t)),
		"SQLITE_PATH=" + filepath.Join(t.TempDir(), "soul.db"),
		"SITE_ADDRESS=" + r.base,
		"DEV_MODE=true",
		"LOG_LEVEL=INFO",
	}, env...)
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, _ := r.health(); st != "" {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica on %s did not answer /healthz:\n%s", r.base, r.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// health returns /healthz's status field, "" when it does not answer.
func (r *replica) health() (string, error) {
	resp, err := r.client.Get(r.base + "/healthz")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	return body.Status, nil
}

// waitHealth polls /healthz until it reports want.
func (r *replica) waitHealth(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := r.health()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz: status %q (%v), want %q", r.base, got, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get sends GET /api/nope, with an X-Forwarded-For when xff is set, and
// returns the status.
func (r *replica) get(t *testing.T, xff string) int {
	req, err := http.NewRequest(http.MethodGet, r.base+"/api/nope", nil)
	if err != nil {
		t.Error(err)
		return 0
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", req.URL, err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// tally counts answers: admitted is everything but 429; a 5xx or a failed
// request fails the test.
type tally struct{ admitted, refused atomic.Int64 }

func (c *tally) add(t *testing.T, status int) {
	switch {
	case status == http.StatusTooManyRequests:
		c.refused.Add(1)
	case status == 0 || status >= 500:
		t.Errorf("answer %d", status)
	default:
		c.admitted.Add(1)
	}
}

// hammer sends perReplica requests to each replica at once, from workers
// goroutines per replica.
func hammer(t *testing.T, replicas []*replica, xff string, workers, perReplica int) *tally {
	var c tally
	var wg sync.WaitGroup
	for _, r := range replicas {
		for w := 0; w < workers; w++ {
			n := perReplica / workers
			if w < perReplica%workers {
				n++
			}
			wg.Add(1)
			go func(r *replica, n int) {
				defer wg.Done()
				for i := 0; i < n; i++ {
					c.add(t, r.get(t, xff))
				}
			}(r, n)
		}
	}
	wg.Wait()
	return &c
}

// Two binaries sharing one Redis, hammered at once on one policy and one
// subject, admit exactly the limit together.
func TestReplicasShareTheLimit(t *testing.T) {
	const limit = 40
	redisURL := testservices.RedisURL(t)
	env := []string{"SECRET_KEY=" + soultest.RandomHex(32), "REDIS_URL=" + redisURL,
		"RATE_LIMIT_DEFAULT_LIMIT=" + strconv.Itoa(limit), "RATE_LIMIT_DEFAULT_WINDOW=1m"}
	a, b := startReplica(t, env...), startReplica(t, env...)

	c := hammer(t, []*replica{a, b}, "", 8, 2*limit)
	t.Logf("two replicas, %d requests at once: admitted %d, limit %d", 4*limit, c.admitted.Load(), limit)
	if c.admitted.Load() != limit {
		t.Errorf("admitted %d, want exactly the limit %d", c.admitted.Load(), limit)
	}

	host := strings.TrimPrefix(redisURL, "redis://")
	host = host[:strings.IndexByte(host, '/')]
	for _, r := range []*replica{a, b} {
		if want := `"storage":"redis ` + host + `"`; !strings.Contains(r.log.String(), want) {
			t.Errorf("startup log does not name the storage (%s):\n%s", want, r.log.String())
		}
	}
}

// Redis dies mid-run: no request fails, each replica limits on its own, and
// /healthz says degraded; Redis comes back and the replicas share it again
// without a restart.
func TestRedisOutage(t *testing.T) {
	const limit = 5
	redis := testservices.StartRedis(t)
	env := []string{"SECRET_KEY=" + soultest.RandomHex(32), "REDIS_URL=" + redis.URL(),
		"RATE_LIMIT_DEFAULT_LIMIT=" + strconv.Itoa(limit), "RATE_LIMIT_DEFAULT_WINDOW=1m",
		// Each phase uses its own forwarded client address.
		"TRUSTED_PROXIES=127.0.0.1/32"}
	replicas := []*replica{startReplica(t, env...), startReplica(t, env...)}

	c := hammer(t, replicas, "198.51.100.1", 2, 2*limit)
	t.Logf("before the outage: admitted %d of %d, limit %d", c.admitted.Load(), 4*limit, limit)
	if c.admitted.Load() != limit {
		t.Fatalf("before the outage: admitted %d, want %d", c.admitted.Load(), limit)
	}

	redis.Stop()
	for i, r := range replicas {
		r.waitHealth(t, "degraded")
		c := hammer(t, []*replica{r}, "198.51.100.2", 1, 2*limit)
		t.Logf("outage, replica %d alone: admitted %d of %d, limit %d", i, c.admitted.Load(), 2*limit, limit)
		if c.admitted.Load() != limit {
			t.Errorf("outage, replica %d: admitted %d, want its own %d", i, c.admitted.Load(), limit)
		}
	}
	for i, r := range replicas {
		if !strings.Contains(r.log.String(), "rate limits fell back to per-instance memory") {
			t.Errorf("replica %d did not log the fallback:\n%s", i, r.log.String())
		}
	}

	redis.Start()
	rc := testservices.RedisClient(t, redis.URL())
	warm := 0
	for i, r := range replicas {
		r.waitHealth(t, "ok")
		// The limiter retries Redis after a short backoff; each probe uses
		// a new subject, so a key appearing in Redis shows the replica is
		// back on it.
		deadline := time.Now().Add(30 * time.Second)
		for {
			before := dbsize(t, rc)
			warm++
			r.get(t, fmt.Sprintf("198.51.101.%d", warm))
			if dbsize(t, rc) > before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d did not return to Redis", i)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	c = hammer(t, replicas, "198.51.100.3", 2, 2*limit)
	t.Logf("after Redis returned: admitted %d of %d, limit %d", c.admitted.Load(), 4*limit, limit)
	if c.admitted.Load() != limit {
		t.Errorf("after Redis returned: admitted %d, want %d", c.admitted.Load(), limit)
	}
}

func dbsize(t *testing.T, c rueidis.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.Do(ctx, c.B().Dbsize().Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
