package limiter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/soulapp/soul/internal/testservices"
)

var testHashKey = []byte("limiter-test-hash-key-not-a-secret-0123456789")

// testPrefix is unique per test so packages tested in parallel on one Redis
// never see each other's keys.
func testPrefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "soultest:" + hex.EncodeToString(b) + ":rl:"
}

// scanKeys lists the keys under prefix; on a cluster it scans every node,
// since SCAN sees only the node it runs on.
func scanKeys(t testing.TB, c rueidis.Client, prefix string) []string {
	t.Helper()
	seen := map[string]bool{}
	var keys []string
	for _, n := range c.Nodes() {
		var cursor uint64
		for {
			e, err := n.Do(context.Background(), n.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
			if err != nil {
				t.Fatalf("SCAN: %v", err)
			}
			for _, k := range e.Elements {
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return keys
}

// dropKeysAfter deletes the test's keys when it ends; the shared Redis is
// never flushed.
func dropKeysAfter(t testing.TB, c rueidis.Client, prefix string) {
	t.Cleanup(func() {
		for _, k := range scanKeys(t, c, prefix) {
			c.Do(context.Background(), c.B().Del().Key(k).Build())
		}
	})
}

func openLimiter(t testing.TB, opts Options) *Limiter {
	t.Helper()
	return openLimiterClock(t, opts, time.Now)
}

func openLimiterClock(t testing.TB, opts Options, clock func() time.Time) *Limiter {
	t.Helper()
	if opts.HashKey == nil {
		opts.HashKey = testHashKey
	}
	l, err := newLimiter(opts, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// redisLimiter opens a Limiter on the shared test Redis under a fresh
// prefix. The timeout is generous so a loaded machine (-race) does not turn
// a slow answer into a fallback and blur what the test measures.
func redisLimiter(t testing.TB) (*Limiter, rueidis.Client, string) {
	t.Helper()
	c := testservices.RedisClient(t, testservices.RedisURL(t))
	prefix := testPrefix(t)
	dropKeysAfter(t, c, prefix)
	return openLimiter(t, Options{Client: c, Prefix: prefix, Timeout: 5 * time.Second}), c, prefix
}

// clusterLimiter is redisLimiter on the shared test Redis Cluster.
func clusterLimiter(t testing.TB) (*Limiter, rueidis.Client, string) {
	t.Helper()
	c := testservices.RedisClient(t, testservices.SharedRedisCluster(t).URL())
	prefix := testPrefix(t)
	dropKeysAfter(t, c, prefix)
	l := openLimiter(t, Options{Client: c, Prefix: prefix, Timeout: 5 * time.Second})
	if !l.cluster {
		t.Fatalf("client mode %s, want cluster", c.Mode())
	}
	return l, c, prefix
}

type backend struct {
	name    string
	storage string
	open    func(t *testing.T) *Limiter
}

// backends runs a behaviour test against both stores: they must agree.
var backends = []backend{
	{"local", StorageLocal, func(t *testing.T) *Limiter { return openLimiter(t, Options{}) }},
	{"redis", StorageRedis, func(t *testing.T) *Limiter { l, _, _ := redisLimiter(t); return l }},
	{"cluster", StorageRedis, func(t *testing.T) *Limiter { l, _, _ := clusterLimiter(t); return l }},
}

func allow(t *testing.T, l *Limiter, r Rule, key, storage string) Decision {
	t.Helper()
	d, err := l.Allow(context.Background(), r, key)
	if err != nil {
		t.Fatalf("Allow(%s, %q): %v", r.Name, key, err)
	}
	if d.Storage != storage {
		t.Fatalf("Allow(%s, %q): storage %q, want %q", r.Name, key, d.Storage, storage)
	}
	return d
}

func peek(t *testing.T, l *Limiter, r Rule, key string) Decision {
	t.Helper()
	d, err := l.Peek(context.Background(), r, key)
	if err != nil {
		t.Fatalf("Peek(%s, %q): %v", r.Name, key, err)
	}
	return d
}

func TestLimitEnforcedExactly(t *testing.T) {
	cases := []struct {
		name  string
		rule  Rule
		calls int
	}{
		{"one per minute", Rule{"otp_phone_min", 1, time.Minute}, 4},
		{"five per five minutes", Rule{"otp_ip", 5, 5 * time.Minute}, 12},
		{"ten per day", Rule{"otp_phone_day", 10, 24 * time.Hour}, 15},
		{"hundred per minute", Rule{"default", 100, time.Minute}, 130},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			l := b.open(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					admitted := 0
					for i := 0; i < tc.calls; i++ {
						d := allow(t, l, tc.rule, "+15555550100", b.storage)
						if d.Limit != tc.rule.Limit {
							t.Fatalf("call %d: Limit %d, want %d", i, d.Limit, tc.rule.Limit)
						}
						if i < tc.rule.Limit {
							if !d.Allowed || d.Remaining != tc.rule.Limit-1-i || d.RetryAfter != 0 {
								t.Fatalf("call %d: %+v, want allowed with %d remaining", i, d, tc.rule.Limit-1-i)
							}
							admitted++
							continue
						}
						if d.Allowed || d.Remaining != 0 {
							t.Fatalf("call %d over the limit: %+v", i, d)
						}
						if d.RetryAfter <= 0 || d.RetryAfter > tc.rule.Window {
							t.Fatalf("call %d: RetryAfter %s outside (0, %s]", i, d.RetryAfter, tc.rule.Window)
						}
						if d.ResetAfter < d.RetryAfter || d.ResetAfter > tc.rule.Window {
							t.Fatalf("call %d: ResetAfter %s outside [%s, %s]", i, d.ResetAfter, d.RetryAfter, tc.rule.Window)
						}
					}
					if admitted != tc.rule.Limit {
						t.Fatalf("admitted %d, want %d", admitted, tc.rule.Limit)
					}
					// Another subject is untouched.
					if d := allow(t, l, tc.rule, "+15555550101", b.storage); !d.Allowed {
						t.Fatalf("other subject refused: %+v", d)
					}
				})
			}
		})
	}
}

// TestRetryAfter follows one sliding window with two hits 300 ms apart: the
// refusal waits for the first hit to leave, and once it has, the next
// refusal waits for the second. Each call is bracketed by the test's clock,
// which bounds the instant the store gave it; the wait reported must fall
// within the bounds those brackets allow.
func TestRetryAfter(t *testing.T) {
	const slack = 5 * time.Millisecond
	rule := Rule{"retry", 2, time.Second}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			l := b.open(t)
			type call struct {
				d          Decision
				start, end time.Time
			}
			hit := func() call {
				start := time.Now()
				d := allow(t, l, rule, "k", b.storage)
				return call{d, start, time.Now()}
			}
			// within checks that a wait from the instant of now until the hit
			// logged in at leaves the window is what the store reported.
			within := func(what string, got time.Duration, at, now call) {
				t.Helper()
				lo := at.start.Add(rule.Window).Sub(now.end) - slack
				hi := at.end.Add(rule.Window).Sub(now.start) + slack
				if got < lo || got > hi {
					t.Fatalf("%s %s, want within [%s, %s]", what, got, lo, hi)
				}
			}

			first := hit()
			time.Sleep(300 * time.Millisecond)
			second := hit()
			third := hit()
			if !first.d.Allowed || !second.d.Allowed || third.d.Allowed {
				t.Fatalf("want two admitted then one refused: %+v %+v %+v", first.d, second.d, third.d)
			}
			within("RetryAfter", third.d.RetryAfter, first, third)
			within("ResetAfter", third.d.ResetAfter, second, third)

			time.Sleep(third.d.RetryAfter + 20*time.Millisecond)
			if fourth := hit(); !fourth.d.Allowed {
				t.Fatalf("refused after RetryAfter: %+v", fourth.d)
			}
			fifth := hit()
			if fifth.d.Allowed {
				t.Fatalf("admitted over the limit: %+v", fifth.d)
			}
			within("RetryAfter", fifth.d.RetryAfter, second, fifth)
		})
	}
}

func TestAllowAllCountsOnlyWhenAllAllow(t *testing.T) {
	const phone = "+15555550100"
	perMinute := Rule{"otp_phone_60s", 1, 60 * time.Second}
	perDay := Rule{"otp_phone_day", 10, 24 * time.Hour}
	perIP := Rule{"otp_ip", 5, 5 * time.Minute}

	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			l := b.open(t)
			checks := []Check{{perMinute, phone}, {perDay, phone}, {perIP, "203.0.113.7"}}

			res, err := l.AllowAll(ctx, checks...)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Allowed || res.Storage != b.storage || len(res.Decisions) != 3 {
				t.Fatalf("first request: %+v", res)
			}
			for i, want := range []int{0, 9, 4} {
				if got := res.Decisions[i].Remaining; got != want {
					t.Fatalf("first request, %s: remaining %d, want %d", checks[i].Rule.Name, got, want)
				}
			}

			for i := 0; i < 5; i++ {
				res, err = l.AllowAll(ctx, checks...)
				if err != nil {
					t.Fatal(err)
				}
				if res.Allowed {
					t.Fatalf("retry %d within 60 s admitted: %+v", i, res)
				}
				if res.Decisions[0].Allowed || !res.Decisions[1].Allowed || !res.Decisions[2].Allowed {
					t.Fatalf("retry %d: only the 60 s rule should refuse: %+v", i, res.Decisions)
				}
				if res.RetryAfter <= 0 || res.RetryAfter > perMinute.Window {
					t.Fatalf("retry %d: RetryAfter %s", i, res.RetryAfter)
				}
				if got := res.Tightest(); got.Rule != perMinute || got.RetryAfter != res.RetryAfter {
					t.Fatalf("retry %d: Tightest %+v, want the 60 s rule", i, got)
				}
			}

			// The refused retries spent neither the daily budget nor the IP's.
			if d := peek(t, l, perDay, phone); d.Remaining != 9 {
				t.Fatalf("daily budget after refused retries: remaining %d, want 9", d.Remaining)
			}
			if d := peek(t, l, perIP, "203.0.113.7"); d.Remaining != 4 {
				t.Fatalf("IP budget after refused retries: remaining %d, want 4", d.Remaining)
			}

			// A refusal by the IP rule protects the phone rules the same way.
			ipOnly := Rule{"otp_ip_tight", 1, time.Minute}
			other := []Check{{perDay, "+15555550102"}, {ipOnly, "198.51.100.1"}}
			if res, _ = l.AllowAll(ctx, other...); !res.Allowed {
				t.Fatalf("first request from a new IP refused: %+v", res)
			}
			other[0].Key = "+15555550103"
			if res, _ = l.AllowAll(ctx, other...); res.Allowed {
				t.Fatalf("second request from a limited IP admitted: %+v", res)
			}
			// On a cluster the phone's slot counts before the IP's refuses,
			// and the hit is taken back.
			if d := peek(t, l, perDay, "+15555550103"); d.Remaining != perDay.Limit {
				t.Fatalf("phone charged for a request its IP refused: remaining %d", d.Remaining)
			}
		})
	}
}

func TestPeekDoesNotCount(t *testing.T) {
	rule := Rule{"otp_wrong_code", 5, 5 * time.Minute}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			l := b.open(t)
			for i := 0; i < 3; i++ {
				if d := peek(t, l, rule, "code-1"); !d.Allowed || d.Remaining != 5 || d.ResetAfter != 0 {
					t.Fatalf("peek on a fresh key: %+v", d)
				}
			}
			for i := 0; i < 5; i++ {
				allow(t, l, rule, "code-1", b.storage)
			}
			d := peek(t, l, rule, "code-1")
			if d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 || d.Storage != b.storage {
				t.Fatalf("peek on a spent key: %+v", d)
			}
		})
	}
}

func TestReset(t *testing.T) {
	rule := Rule{"otp_wrong_code", 5, 5 * time.Minute}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			l := b.open(t)
			for i := 0; i < 6; i++ {
				allow(t, l, rule, "+15555550100", b.storage)
			}
			if err := l.Reset(context.Background(), rule, "+15555550100"); err != nil {
				t.Fatal(err)
			}
			if d := allow(t, l, rule, "+15555550100", b.storage); !d.Allowed || d.Remaining != 4 {
				t.Fatalf("after Reset: %+v", d)
			}
		})
	}
}

func TestForget(t *testing.T) {
	ctx := context.Background()
	a := Rule{"default", 100, time.Minute}
	b := Rule{"otp_phone_day", 10, 24 * time.Hour}
	unseen := Rule{"otp_phone_60s", 1, time.Minute}

	t.Run("local", func(t *testing.T) {
		l := openLimiter(t, Options{})
		allow(t, l, a, "user-1", StorageLocal)
		allow(t, l, b, "user-1", StorageLocal)
		allow(t, l, a, "user-2", StorageLocal)
		if err := l.Forget(ctx, "user-1"); err != nil {
			t.Fatal(err)
		}
		if n := l.mem.size(); n != 1 {
			t.Fatalf("%d local entries after Forget, want user-2's only", n)
		}
		if d := peek(t, l, a, "user-2"); d.Remaining != 99 {
			t.Fatalf("another subject lost its hits: %+v", d)
		}
	})

	t.Run("redis", func(t *testing.T) {
		l, c, prefix := redisLimiter(t)
		for _, r := range []Rule{a, b, unseen} {
			allow(t, l, r, "user-1", StorageRedis)
		}
		allow(t, l, a, "user-2", StorageRedis)
		if n := len(scanKeys(t, c, prefix)); n != 4 {
			t.Fatalf("%d keys, want 4", n)
		}

		// A fresh instance (after a restart) knows only the rules it is given.
		fresh := openLimiter(t, Options{Client: c, Prefix: prefix, Timeout: 5 * time.Second})
		if err := fresh.Forget(ctx, "user-1", a, b); err != nil {
			t.Fatal(err)
		}
		if n := len(scanKeys(t, c, prefix)); n != 2 {
			t.Fatalf("%d keys after Forget of two rules, want 2", n)
		}
		// The instance that checked the rules forgets them all.
		if err := l.Forget(ctx, "user-1"); err != nil {
			t.Fatal(err)
		}
		keys := scanKeys(t, c, prefix)
		if len(keys) != 1 || keys[0] != l.storageKey(a.Name, "user-2") {
			t.Fatalf("keys after Forget: %q, want user-2's only", keys)
		}
	})
}

// fixedWindow is the plain fixed-window counter the sliding log replaces,
// kept here to show the burst it lets through at a window boundary.
type fixedWindow struct {
	limit  int
	window time.Duration
	cur    int64
	n      int
}

func (f *fixedWindow) allow(at time.Duration) bool {
	if w := int64(at / f.window); w != f.cur {
		f.cur, f.n = w, 0
	}
	if f.n < f.limit {
		f.n++
		return true
	}
	return false
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestTighterThanFixedWindow(t *testing.T) {
	const limit = 5
	t.Run("local", func(t *testing.T) {
		window := time.Minute
		rule := Rule{"boundary", limit, window}
		clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
		l := openLimiterClock(t, Options{}, clock.Now)
		fixed := &fixedWindow{limit: limit, window: window}

		// A burst a second before a fixed-window boundary and another a
		// second after it.
		at := window - time.Second
		clock.Add(at)
		ours, theirs := 0, 0
		for _, step := range []time.Duration{0, 2 * time.Second} {
			clock.Add(step)
			at += step
			for i := 0; i < limit; i++ {
				if allow(t, l, rule, "k", StorageLocal).Allowed {
					ours++
				}
				if fixed.allow(at) {
					theirs++
				}
			}
		}
		if theirs != 2*limit {
			t.Fatalf("fixed window admitted %d, expected the 2x burst %d", theirs, 2*limit)
		}
		if ours != limit {
			t.Fatalf("sliding log admitted %d within 2 s, want %d", ours, limit)
		}

		// Exact edge: the burst leaves the window exactly one window later.
		clock.Add(window - 2*time.Second - time.Nanosecond)
		if d := allow(t, l, rule, "k", StorageLocal); d.Allowed || d.RetryAfter != time.Nanosecond {
			t.Fatalf("1ns before the burst leaves: %+v", d)
		}
		clock.Add(time.Nanosecond)
		if d := allow(t, l, rule, "k", StorageLocal); !d.Allowed || d.Remaining != limit-1 {
			t.Fatalf("when the burst leaves: %+v", d)
		}
	})

	t.Run("redis", func(t *testing.T) {
		// Redis keeps its own clock, so the bursts are timed against it:
		// one just before a whole second, one just after.
		const window = time.Second
		rule := Rule{"boundary", limit, window}
		l, c, _ := redisLimiter(t)
		for attempt := 0; attempt < 5; attempt++ {
			key := "k" + strconv.Itoa(attempt)
			now := serverTime(t, c)
			boundary := (now/window + 1) * window
			if boundary-now < 400*time.Millisecond {
				boundary += window
			}
			time.Sleep(boundary - 150*time.Millisecond - now)

			fixed := &fixedWindow{limit: limit, window: window}
			ours, theirs := 0, 0
			burst := func() (start, end time.Duration) {
				start = serverTime(t, c)
				for i := 0; i < limit; i++ {
					if allow(t, l, rule, key, StorageRedis).Allowed {
						ours++
					}
					if fixed.allow(start) {
						theirs++
					}
				}
				return start, serverTime(t, c)
			}
			s1, e1 := burst()
			time.Sleep(boundary + 100*time.Millisecond - e1)
			s2, e2 := burst()
			if e1 >= boundary || s2 < boundary || e2-s1 >= window {
				t.Logf("attempt %d missed the boundary (bursts %s..%s and %s..%s around %s); again",
					attempt, s1, e1, s2, e2, boundary)
				continue
			}
			if theirs != 2*limit {
				t.Fatalf("fixed window admitted %d, expected the 2x burst %d", theirs, 2*limit)
			}
			if ours != limit {
				t.Fatalf("sliding log admitted %d within %s, want %d", ours, e2-s1, limit)
			}
			return
		}
		t.Fatal("could not place two bursts around a window boundary")
	})
}

// serverTime is Redis's TIME as a duration since the Unix epoch.
func serverTime(t *testing.T, c rueidis.Client) time.Duration {
	t.Helper()
	v, err := c.Do(context.Background(), c.B().Time().Build()).AsStrSlice()
	if err != nil || len(v) != 2 {
		t.Fatalf("TIME: %v %v", v, err)
	}
	sec, _ := strconv.ParseInt(v[0], 10, 64)
	usec, _ := strconv.ParseInt(v[1], 10, 64)
	return time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond
}

// TestReplicasShareTheLimit hammers one Redis from two instances, each with
// its own client, as two replicas of the service would.
func TestReplicasShareTheLimit(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testReplicasShareTheLimit(t, testservices.RedisURL(t)) })
	t.Run("cluster", func(t *testing.T) {
		testReplicasShareTheLimit(t, testservices.SharedRedisCluster(t).URL())
	})
}

func testReplicasShareTheLimit(t *testing.T, url string) {
	ipRule := Rule{"replica_ip", 5, time.Minute}
	phoneRule := Rule{"replica_phone", 3, time.Minute}
	// A refused request costs no rule anything: on a cluster the IP's
	// slot, checked first, gives back the hits the phone's refused.
	const ipLeft = 2
	single := Rule{"replica_default", 100, time.Minute}
	tight := Rule{"replica_tight", 1, time.Minute}
	day := Rule{"replica_day", 10, 24 * time.Hour}
	wide := Rule{"replica_wide", 25, time.Minute}

	cases := []struct {
		name   string
		checks []Check
		want   int
		// after checks the other rules were not charged for refusals.
		after func(t *testing.T, l *Limiter)
	}{
		{name: "100 per minute", checks: []Check{{single, "203.0.113.7"}}, want: 100},
		{name: "1 per minute", checks: []Check{{tight, "+15555550100"}}, want: 1},
		{
			name:   "two rules, the tighter binds",
			checks: []Check{{day, "+15555550100"}, {wide, "+15555550100"}},
			want:   10,
			after: func(t *testing.T, l *Limiter) {
				if d := peek(t, l, wide, "+15555550100"); d.Remaining != 15 {
					t.Fatalf("wider rule charged for refusals: remaining %d, want 15", d.Remaining)
				}
			},
		}, {
			name:   "two subjects in two slots",
			checks: []Check{{ipRule, "203.0.113.9"}, {phoneRule, "+15555550199"}},
			want:   3,
			after: func(t *testing.T, l *Limiter) {
				if d := peek(t, l, ipRule, "203.0.113.9"); d.Remaining != ipLeft {
					t.Fatalf("IP rule after refusals by the phone's: remaining %d, want %d", d.Remaining, ipLeft)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prefix := testPrefix(t)
			var replicas []*Limiter
			for i := 0; i < 2; i++ {
				c := testservices.RedisClient(t, url)
				if i == 0 {
					dropKeysAfter(t, c, prefix)
				}
				replicas = append(replicas, openLimiter(t, Options{Client: c, Prefix: prefix, Timeout: 10 * time.Second}))
			}

			const workers, calls = 32, 20
			var admitted, refused atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make(chan error, 2*workers)
			for _, l := range replicas {
				for w := 0; w < workers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						for i := 0; i < calls; i++ {
							res, err := l.AllowAll(context.Background(), tc.checks...)
							if err != nil {
								errs <- err
								return
							}
							if res.Storage != StorageRedis {
								errs <- fmt.Errorf("answered by %s", res.Storage)
								return
							}
							if res.Allowed {
								admitted.Add(1)
							} else {
								refused.Add(1)
							}
						}
					}()
				}
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			t.Logf("admitted=%d limit=%d of %d calls", admitted.Load(), tc.want, admitted.Load()+refused.Load())
			if got := admitted.Load(); got != int64(tc.want) {
				t.Fatalf("admitted %d of %d, want exactly %d", got, admitted.Load()+refused.Load(), tc.want)
			}
			for i, l := range replicas {
				if n := l.Fallbacks(); n != 0 {
					t.Fatalf("replica %d fell back %d times", i, n)
				}
			}
			if tc.after != nil {
				tc.after(t, replicas[0])
			}
		})
	}
}

var hexKey = regexp.MustCompile(`^\{([0-9a-f]{32})\}:([a-z0-9_.-]+)$`)

func TestKeysAreHashedAndExpire(t *testing.T) {
	subjects := []struct {
		rule Rule
		key  string
	}{
		{Rule{"otp_phone_60s", 1, time.Minute}, "+15555550100"},
		{Rule{"otp_phone_day", 10, 24 * time.Hour}, "+15555550100"},
		{Rule{"default", 100, time.Minute}, "7f1c2d9e-4b6a-4e8f-9c1d-2a3b4c5d6e7f"},
		{Rule{"otp_ip", 5, 5 * time.Minute}, "203.0.113.7"},
	}
	clear := func(t *testing.T, key string) {
		t.Helper()
		for _, s := range subjects {
			for _, raw := range []string{s.key, strings.TrimPrefix(s.key, "+")} {
				if strings.Contains(key, raw) {
					t.Fatalf("storage key %q holds subject %q", key, raw)
				}
			}
		}
	}

	t.Run("redis", func(t *testing.T) {
		ctx := context.Background()
		l, c, prefix := redisLimiter(t)
		for _, s := range subjects {
			allow(t, l, s.rule, s.key, StorageRedis)
		}
		keys := scanKeys(t, c, prefix)
		if len(keys) != len(subjects) {
			t.Fatalf("%d keys, want %d: %q", len(keys), len(subjects), keys)
		}
		hashes := map[string]bool{}
		for _, k := range keys {
			clear(t, k)
			m := hexKey.FindStringSubmatch(strings.TrimPrefix(k, prefix))
			if m == nil {
				t.Fatalf("key %q is not %s{<32 hex>}:<rule>", k, prefix)
			}
			hashes[m[1]] = true

			members, err := c.Do(ctx, c.B().Zrange().Key(k).Min("0").Max("-1").Build()).AsStrSlice()
			if err != nil || len(members) != 1 {
				t.Fatalf("ZRANGE %s: %q %v", k, members, err)
			}
			clear(t, members[0])
		}
		// One hash tag per subject: the phone's two rules share a slot.
		if len(hashes) != len(subjects)-1 {
			t.Fatalf("%d hash tags for %d subjects: %v", len(hashes), len(subjects)-1, hashes)
		}
		for _, s := range subjects {
			k := l.storageKey(s.rule.Name, s.key)
			ttl, err := c.Do(ctx, c.B().Pttl().Key(k).Build()).AsInt64()
			if err != nil {
				t.Fatal(err)
			}
			w := s.rule.Window.Milliseconds()
			if ttl <= 0 || ttl > w || ttl < w-5000 {
				t.Fatalf("%s: PTTL %d ms, want just under %d", s.rule.Name, ttl, w)
			}
		}
	})

	t.Run("local", func(t *testing.T) {
		l := openLimiter(t, Options{})
		for _, s := range subjects {
			allow(t, l, s.rule, s.key, StorageLocal)
		}
		n := 0
		for i := range l.mem.shards {
			for k := range l.mem.shards[i].m {
				clear(t, k)
				n++
			}
		}
		if n != len(subjects) {
			t.Fatalf("%d local entries, want %d", n, len(subjects))
		}
	})

	t.Run("hash key matters", func(t *testing.T) {
		a := openLimiter(t, Options{HashKey: []byte("one key")})
		b := openLimiter(t, Options{HashKey: []byte("another key")})
		if a.storageKey("r", "+15555550100") == b.storageKey("r", "+15555550100") {
			t.Fatal("two hash keys derived one storage key")
		}
	})
}

func (s *memoryStore) size() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

func TestLocalStoreStaysBounded(t *testing.T) {
	rule := Rule{"bounded", 10, time.Second}
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := openLimiterClock(t, Options{}, clock.Now)

	// A refused client adds nothing: one key holds at most Limit hits.
	for i := 0; i < 1000; i++ {
		allow(t, l, rule, "hammer", StorageLocal)
	}
	k := l.storageKey(rule.Name, "hammer")
	if n := len(l.mem.shards[l.mem.shardOf(k)].m[k].hits); n != rule.Limit {
		t.Fatalf("%d hits logged, want %d", n, rule.Limit)
	}

	for i := 0; i < 5000; i++ {
		allow(t, l, rule, "subject-"+strconv.Itoa(i), StorageLocal)
	}
	if n := l.mem.size(); n != 5001 {
		t.Fatalf("%d entries, want 5001", n)
	}
	clock.Add(rule.Window - time.Millisecond)
	l.mem.sweep()
	if n := l.mem.size(); n != 5001 {
		t.Fatalf("sweep dropped live entries: %d left", n)
	}
	clock.Add(time.Millisecond)
	l.mem.sweep()
	if n := l.mem.size(); n != 0 {
		t.Fatalf("%d entries after every window ended, want 0", n)
	}
}

func TestCloseStopsSweeper(t *testing.T) {
	l, err := New(Options{HashKey: testHashKey, SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.mem.done:
	case <-time.After(time.Second):
		t.Fatal("sweeper still running after Close")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if d, err := l.Allow(context.Background(), Rule{"r", 1, time.Second}, "k"); err != nil || !d.Allowed {
		t.Fatalf("Allow after Close: %+v %v", d, err)
	}
}

func TestInvalidInput(t *testing.T) {
	ok := Rule{"ok", 1, time.Second}
	cases := []struct {
		name   string
		checks []Check
		want   error
	}{
		{"no checks", nil, ErrInvalidCheck},
		{"empty key", []Check{{ok, ""}}, ErrInvalidCheck},
		{"same rule and key twice", []Check{{ok, "k"}, {ok, "k"}}, ErrInvalidCheck},
		{"empty name", []Check{{Rule{"", 1, time.Second}, "k"}}, ErrInvalidRule},
		{"colon in name", []Check{{Rule{"a:b", 1, time.Second}, "k"}}, ErrInvalidRule},
		{"zero limit", []Check{{Rule{"r", 0, time.Second}, "k"}}, ErrInvalidRule},
		{"window under 1ms", []Check{{Rule{"r", 1, time.Microsecond}, "k"}}, ErrInvalidRule},
	}
	l := openLimiter(t, Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := l.AllowAll(context.Background(), tc.checks...); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("no hash key", func(t *testing.T) {
		if _, err := New(Options{}); err == nil {
			t.Fatal("New without HashKey succeeded")
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := l.Allow(ctx, ok, "k"); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	})
}

func TestTightest(t *testing.T) {
	a := Decision{Rule: Rule{Name: "a"}, Allowed: true, Remaining: 5, ResetAfter: time.Second}
	b := Decision{Rule: Rule{Name: "b"}, Allowed: true, Remaining: 2, ResetAfter: time.Second}
	c := Decision{Rule: Rule{Name: "c"}, Allowed: true, Remaining: 2, ResetAfter: time.Hour}
	x := Decision{Rule: Rule{Name: "x"}, Allowed: false, RetryAfter: time.Second}
	y := Decision{Rule: Rule{Name: "y"}, Allowed: false, RetryAfter: time.Minute}
	cases := []struct {
		name string
		ds   []Decision
		want string
	}{
		{"least remaining", []Decision{a, b}, "b"},
		{"tie on remaining: longest reset", []Decision{b, c, a}, "c"},
		{"a refusal beats any room", []Decision{a, x, b}, "x"},
		{"longest wait among refusals", []Decision{x, a, y}, "y"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Result{Decisions: tc.ds}).Tightest().Rule.Name; got != tc.want {
				t.Fatalf("Tightest %s, want %s", got, tc.want)
			}
		})
	}
}

// TestFallback takes a private Redis away and brings it back: calls keep
// being answered, from memory, and return to Redis by themselves.
func TestFallback(t *testing.T) {
	cases := []struct {
		name   string
		down   func(*privateRedis)
		up     func(*privateRedis)
		maxLag time.Duration // longest a call may take while Redis is down: well under a dial timeout
	}{
		{
			name:   "killed",
			down:   func(s *privateRedis) { s.stop() },
			up:     func(s *privateRedis) { s.start() },
			maxLag: time.Second,
		},
		{
			// A frozen server accepts nothing and answers nothing: only the
			// call timeout gets the request out.
			name:   "unresponsive",
			down:   func(s *privateRedis) { signal(t, s, syscall.SIGSTOP) },
			up:     func(s *privateRedis) { signal(t, s, syscall.SIGCONT) },
			maxLag: time.Second,
		},
	}
	const backoff = 300 * time.Millisecond
	rule := Rule{"fallback", 1000, time.Minute}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startPrivateRedis(t)
			c := testservices.RedisClient(t, srv.url())
			// Dial and load the script with a patient limiter first: on a
			// busy machine a first call may outlast the short call timeout
			// below and start the test on the fallback.
			allow(t, openLimiter(t, Options{Client: c, Prefix: testPrefix(t), Timeout: 10 * time.Second}), rule, "warm", StorageRedis)
			var reported atomic.Int64
			l := openLimiter(t, Options{
				Client:       c,
				Prefix:       testPrefix(t),
				Timeout:      250 * time.Millisecond,
				Backoff:      backoff,
				OnRedisError: func(error) { reported.Add(1) },
			})
			ctx := context.Background()

			if d := allow(t, l, rule, "k", StorageRedis); !d.Allowed {
				t.Fatalf("first call: %+v", d)
			}
			if l.Storage() != StorageRedis {
				t.Fatalf("Storage() %s while Redis is up", l.Storage())
			}

			tc.down(srv)
			const calls = 20
			downAt := time.Now()
			for i := 0; i < calls; i++ {
				start := time.Now()
				d, err := l.Allow(ctx, rule, "k")
				if err != nil {
					t.Fatalf("call %d with Redis down: %v", i, err)
				}
				if d.Storage != StorageLocal || !d.Allowed {
					t.Fatalf("call %d with Redis down: %+v", i, d)
				}
				if lag := time.Since(start); lag > tc.maxLag {
					t.Fatalf("call %d with Redis down took %s", i, lag)
				}
				time.Sleep(25 * time.Millisecond)
			}
			if n := l.Fallbacks(); n != calls {
				t.Fatalf("Fallbacks() %d, want %d", n, calls)
			}
			// Redis is tried once per backoff, not on every call.
			if n, most := reported.Load(), int64(time.Since(downAt)/backoff)+1; n < 1 || n > most {
				t.Fatalf("%d Redis errors reported in %s, want 1 to %d", n, time.Since(downAt), most)
			}
			// Storage() reports the backoff that a failed call starts, and a
			// call after the backoff tries Redis again: asked right after a
			// call, not after the loop's last sleep (by when the backoff may
			// have run out), it is local.
			if _, err := l.Allow(ctx, rule, "k"); err != nil {
				t.Fatal(err)
			}
			if l.Storage() != StorageLocal {
				t.Fatalf("Storage() %s while Redis is down", l.Storage())
			}

			tc.up(srv)
			deadline := time.Now().Add(5 * time.Second)
			for {
				d, err := l.Allow(ctx, rule, "k")
				if err != nil {
					t.Fatal(err)
				}
				if d.Storage == StorageRedis {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("still on %s 5 s after Redis came back", d.Storage)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if l.Storage() != StorageRedis {
				t.Fatalf("Storage() %s after recovery", l.Storage())
			}
		})
	}
}

func signal(t *testing.T, s *privateRedis, sig syscall.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// Probe reports the store in use, not the one configured: a Redis that
// does not answer is reported (once per backoff) and calls go to memory.
func TestProbe(t *testing.T) {
	ctx := context.Background()
	if got := openLimiter(t, Options{}).Probe(ctx); got != StorageLocal {
		t.Errorf("no Redis: Probe() = %s, want %s", got, StorageLocal)
	}
	l, _, _ := redisLimiter(t)
	if got := l.Probe(ctx); got != StorageRedis {
		t.Errorf("Redis up: Probe() = %s, want %s", got, StorageRedis)
	}

	srv := startPrivateRedis(t)
	c := testservices.RedisClient(t, srv.url())
	srv.stop()
	var reported atomic.Int64
	down := openLimiter(t, Options{Client: c, Backoff: time.Minute, OnRedisError: func(error) { reported.Add(1) }})
	for i := 0; i < 2; i++ {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		got := down.Probe(pctx)
		cancel()
		if got != StorageLocal {
			t.Errorf("Redis down, probe %d: Probe() = %s, want %s", i+1, got, StorageLocal)
		}
	}
	if n := reported.Load(); n != 1 {
		t.Errorf("Redis down: %d errors reported for two probes in one backoff, want 1", n)
	}
	if got := down.Storage(); got != StorageLocal {
		t.Errorf("Redis down: Storage() = %s after the probe, want %s", got, StorageLocal)
	}
}
