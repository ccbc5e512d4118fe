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

	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	soultest.RemoveBinary()
	testservices.StopSharedRedisCluster()
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
	status, _, err := r.do(xff)
	if err != nil {
		t.Error(err)
	}
	return status
}

// do sends GET /api/nope, with an X-Forwarded-For when xff is set, and
// returns the status and the header; status 0 when the request failed.
func (r *replica) do(xff string) (int, http.Header, error) {
	req, err := http.NewRequest(http.MethodGet, r.base+"/api/nope", nil)
	if err != nil {
		return 0, nil, err
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", req.URL, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
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
	t.Run("redis", func(t *testing.T) { testReplicasShareTheLimit(t, testservices.RedisURL(t)) })
	t.Run("cluster", func(t *testing.T) { testReplicasShareTheLimit(t, testservices.SharedRedisCluster(t).URL()) })
}

func testReplicasShareTheLimit(t *testing.T, redisURL string) {
	const limit = 40
	// A Redis slowed by a busy test machine must not send a check to
	// per-instance memory: that is the outage path, tested on its own.
	env := []string{"SECRET_KEY=" + soultest.RandomHex(32), "REDIS_URL=" + redisURL, "RATE_LIMIT_REDIS_TIMEOUT=2s",
		"RATE_LIMIT_DEFAULT_LIMIT=" + strconv.Itoa(limit), "RATE_LIMIT_DEFAULT_WINDOW=1m"}
	a, b := startReplica(t, env...), startReplica(t, env...)

	c := hammer(t, []*replica{a, b}, "", 8, 2*limit)
	t.Logf("%s: two replicas sharing one Redis, %d requests at once on one policy: admitted=%d limit=%d", t.Name(), 4*limit, c.admitted.Load(), limit)
	if c.admitted.Load() != limit {
		t.Errorf("admitted %d, want exactly the limit %d", c.admitted.Load(), limit)
	}

	host := strings.TrimPrefix(redisURL, "redis://")
	host = host[:strings.IndexAny(host, "/?")]
	for _, r := range []*replica{a, b} {
		if want := `"storage":"redis ` + host + `"`; !strings.Contains(r.log.String(), want) {
			t.Errorf("startup log does not name the storage (%s):\n%s", want, r.log.String())
		}
	}
}

// answer is one request of a run that keeps going across a Redis outage.
type answer struct {
	replica    int
	start, end time.Time
	status     int
	header     http.Header
	err        error
}

// siege sends requests for one subject to every replica, from two workers
// each, until stop is called, and keeps every answer.
type siege struct {
	mu      sync.Mutex
	answers []answer
	done    chan struct{}
	wg      sync.WaitGroup
}

func besiege(replicas []*replica, xff string) *siege {
	s := &siege{done: make(chan struct{})}
	for i, r := range replicas {
		for w := 0; w < 2; w++ {
			s.wg.Add(1)
			go func(i int, r *replica) {
				defer s.wg.Done()
				for {
					select {
					case <-s.done:
						return
					default:
					}
					a := answer{replica: i, start: time.Now()}
					a.status, a.header, a.err = r.do(xff)
					a.end = time.Now()
					s.mu.Lock()
					s.answers = append(s.answers, a)
					s.mu.Unlock()
					// Paced, so the run measures the limiter rather than
					// the machine.
					time.Sleep(5 * time.Millisecond)
				}
			}(i, r)
		}
	}
	return s
}

func (s *siege) stop() []answer {
	close(s.done)
	s.wg.Wait()
	return s.snapshot()
}

func (s *siege) snapshot() []answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]answer(nil), s.answers...)
}

// refusals counts, per replica, the 429s of requests sent after from.
func refusals(answers []answer, from time.Time, n int) []int {
	got := make([]int, n)
	for _, a := range answers {
		if a.status == http.StatusTooManyRequests && a.start.After(from) {
			got[a.replica]++
		}
	}
	return got
}

// checkRefusal fails unless h carries the default policy's fields at its
// limit, Retry-After and a problem+json body type.
func checkRefusal(h http.Header, limit int) error {
	want := map[string]string{
		"RateLimit-Policy":      `"default";q=` + strconv.Itoa(limit) + ";w=60",
		"X-RateLimit-Limit":     strconv.Itoa(limit),
		"X-RateLimit-Remaining": "0",
		"Content-Type":          "application/problem+json",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			return fmt.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !strings.HasPrefix(h.Get("RateLimit"), `"default";r=0;t=`) {
		return fmt.Errorf("RateLimit = %q", h.Get("RateLimit"))
	}
	if s, err := strconv.Atoi(h.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		return fmt.Errorf("Retry-After = %q, want 1..60", h.Get("Retry-After"))
	}
	return nil
}

// Redis is killed while both replicas are under load: no request fails,
// each replica goes on limiting from its own memory, and /healthz says
// degraded; Redis restarts and both replicas share it again by themselves,
// without a restart of either.
func TestRedisOutage(t *testing.T) {
	const limit = 5
	redis := testservices.StartRedis(t)
	secret := soultest.RandomHex(32)
	env := []string{"SECRET_KEY=" + secret, "REDIS_URL=" + redis.URL(),
		"RATE_LIMIT_DEFAULT_LIMIT=" + strconv.Itoa(limit), "RATE_LIMIT_DEFAULT_WINDOW=1m",
		// Each phase uses its own forwarded client address, and the
		// shield stays out of the way of the policy under test.
		"TRUSTED_PROXIES=127.0.0.1/32", "RATE_LIMIT_SHIELD_EVENTS=1000000"}
	replicas := []*replica{startReplica(t, env...), startReplica(t, env...)}

	c := hammer(t, replicas, "198.51.100.1", 2, 2*limit)
	t.Logf("before the outage, two replicas on one subject: admitted=%d limit=%d", c.admitted.Load(), limit)
	if c.admitted.Load() != limit {
		t.Fatalf("before the outage: admitted %d, want %d", c.admitted.Load(), limit)
	}

	// The load on one subject runs from before the kill until after Redis
	// is back.
	load := besiege(replicas, "198.51.100.2")
	waitAnswers(t, load, 4*limit)
	redis.Kill()
	killed := time.Now()
	for _, r := range replicas {
		r.waitHealth(t, "degraded")
	}
	// Refusals keep coming, from each replica's own memory.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := refusals(load.snapshot(), killed, len(replicas))
		if got[0] > 0 && got[1] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 429 from each replica within 30 s of the kill: %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A new subject gets each replica's own full budget: limits hold per
	// instance.
	for i, r := range replicas {
		c := hammer(t, []*replica{r}, "198.51.100.3", 1, 2*limit)
		t.Logf("outage, replica %d alone on a new subject: admitted=%d limit=%d", i, c.admitted.Load(), limit)
		if c.admitted.Load() != limit {
			t.Errorf("outage, replica %d: admitted %d, want its own %d", i, c.admitted.Load(), limit)
		}
	}
	for i, r := range replicas {
		if !strings.Contains(r.log.String(), "rate limits fell back to per-instance memory") {
			t.Errorf("replica %d did not log the fallback:\n%s", i, r.log.String())
		}
	}

	restarted := time.Now()
	redis.Start()
	rc := testservices.RedisClient(t, redis.URL())
	keys := soultest.LimiterKeys(t, secret)
	probe := 0
	for i, r := range replicas {
		r.waitHealth(t, "ok")
		// Each probe is a new subject, so its entry appearing in Redis
		// shows this replica's limiter is back on Redis.
		deadline := time.Now().Add(30 * time.Second)
		for {
			probe++
			xff := fmt.Sprintf("198.51.101.%d", probe)
			r.get(t, xff)
			if exists(t, rc, keys.StorageKey("default", "ip:"+xff)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d did not return to Redis within 30 s", i)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	answers := load.stop()

	// Every answer of the run was the route's 404 or the policy's 429.
	admittedInOutage := make([]int, len(replicas))
	for _, a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("replica %d, %s from the kill: %v", a.replica, a.start.Sub(killed), a.err)
		case a.status == http.StatusTooManyRequests:
			if err := checkRefusal(a.header, limit); err != nil {
				t.Errorf("replica %d, 429 %s from the kill: %v", a.replica, a.start.Sub(killed), err)
			}
		case a.status != http.StatusNotFound:
			t.Errorf("replica %d, %s from the kill: status %d", a.replica, a.start.Sub(killed), a.status)
		case a.start.After(killed) && a.end.Before(restarted):
			admittedInOutage[a.replica]++
		}
	}
	got := refusals(answers, killed, len(replicas))
	t.Logf("under load across the kill: %d answers; sent while Redis was dead, admitted per replica %v (limit %d each); refused after the kill %v",
		len(answers), admittedInOutage, limit, got)
	for i, n := range admittedInOutage {
		// Only this replica's memory answered these; it knows nothing of
		// the hits Redis counted, so it may admit up to its own limit.
		if n > limit {
			t.Errorf("replica %d admitted %d while Redis was dead, over its own limit %d", i, n, limit)
		}
	}

	c = hammer(t, replicas, "198.51.100.4", 2, 2*limit)
	t.Logf("after Redis restarted, two replicas on one subject: admitted=%d limit=%d", c.admitted.Load(), limit)
	if c.admitted.Load() != limit {
		t.Errorf("after Redis restarted: admitted %d, want %d", c.admitted.Load(), limit)
	}
}

// waitAnswers waits until the run has n answers.
func waitAnswers(t *testing.T, s *siege, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(s.snapshot()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d answers in 30 s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(t *testing.T, c rueidis.Client, key string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.Do(ctx, c.B().Exists().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}
