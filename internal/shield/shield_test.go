package shield

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

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

func newTestShield(events int, window time.Duration) (*Shield, *fakeClock) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	return newShield(events, window, clock.Now), clock
}

func TestAdmitsTheLimitThenRefuses(t *testing.T) {
	s, _ := newTestShield(300, 10*time.Second)
	for i := 0; i < 300; i++ {
		if d := s.Allow("198.18.0.1"); !d.Allowed {
			t.Fatalf("request %d refused: %+v", i+1, d)
		}
	}
	d := s.Allow("198.18.0.1")
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > 20*time.Second {
		t.Fatalf("request 301: %+v, want a refusal with a Retry-After within two windows", d)
	}
	if s.Refused() != 1 {
		t.Fatalf("Refused() %d", s.Refused())
	}
	// Another client is not affected.
	if d := s.Allow("198.18.0.2"); !d.Allowed || d.Count != 0 {
		t.Fatalf("another client: %+v", d)
	}
}

// Concurrent requests of one client are each counted: exactly the limit
// gets through.
func TestConcurrentRequestsAllCounted(t *testing.T) {
	s, _ := newTestShield(1000, time.Hour)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; i < 200; i++ {
				if s.Allow("2001:db8::/64").Allowed {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	// One client's check and count are one step (its stripe): exactly
	// the limit passes, however the requests interleave.
	if allowed != 1000 {
		t.Fatalf("%d of 3200 admitted, want exactly 1000", allowed)
	}
}

// The sliding window: a client that used its whole budget at the end of
// one window is not given a second one at the start of the next.
func TestNoDoubleBurstAcrossTheBoundary(t *testing.T) {
	s, clock := newTestShield(100, 10*time.Second)
	clock.Add(9 * time.Second)
	for i := 0; i < 100; i++ {
		s.Allow("k")
	}
	clock.Add(2 * time.Second) // 1 s into the next window: 90% of the last still counts
	n := 0
	for i := 0; i < 100; i++ {
		if s.Allow("k").Allowed {
			n++
		}
	}
	if n > 11 {
		t.Fatalf("%d admitted 2 s after a full burst, want about 10", n)
	}
	// Two windows of silence forget everything.
	clock.Add(20 * time.Second)
	if d := s.Allow("k"); !d.Allowed || d.Count != 0 {
		t.Fatalf("after two idle windows: %+v", d)
	}
}

// RetryAfter is honest: waiting it out is enough, and waiting much less
// is not.
func TestRetryAfter(t *testing.T) {
	s, clock := newTestShield(50, 10*time.Second)
	clock.Add(5 * time.Second)
	for i := 0; i < 50; i++ {
		s.Allow("k")
	}
	d := s.Allow("k")
	if d.Allowed {
		t.Fatal("51st admitted")
	}
	clock.Add(d.RetryAfter / 2)
	if s.Allow("k").Allowed {
		t.Fatalf("admitted at half of Retry-After %s", d.RetryAfter)
	}
	clock.Add(d.RetryAfter/2 + 10*time.Millisecond)
	if !s.Allow("k").Allowed {
		t.Fatalf("still refused after Retry-After %s", d.RetryAfter)
	}
}

// A flood of a million distinct clients costs no memory beyond the fixed
// counters, and does not push a quiet client over its limit.
func TestFloodOfClients(t *testing.T) {
	s, _ := newTestShield(300, 10*time.Second)
	for i := 0; i < 1_000_000; i++ {
		if !s.Allow("flood-" + strconv.Itoa(i)).Allowed {
			t.Fatalf("flood client %d refused on its first request", i)
		}
	}
	est := s.Clients()
	if est < 500_000 {
		t.Fatalf("Clients() %.0f after a million distinct clients", est)
	}
	d := s.Allow("quiet")
	if !d.Allowed || d.Count > 30 {
		t.Fatalf("a quiet client after the flood: %+v, its estimate should stay near 0", d)
	}
}

func TestClientsEstimate(t *testing.T) {
	s, _ := newTestShield(10, time.Minute)
	for i := 0; i < 5000; i++ {
		s.Allow("c" + strconv.Itoa(i))
		s.Allow("c" + strconv.Itoa(i))
	}
	if est := s.Clients(); est < 4500 || est > 5500 {
		t.Fatalf("Clients() %.0f for 5000 clients", est)
	}
}

func BenchmarkAllow(b *testing.B) {
	s := New(1<<30, 10*time.Second)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "2001:db8:" + strconv.Itoa(i) + "::/64"
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Allow(keys[i&4095])
			i++
		}
	})
}
