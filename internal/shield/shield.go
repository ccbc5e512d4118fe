// Package shield is the coarse per-client flood guard that runs before
// anything else on a request: at most Events requests per client in any
// Window, counted in process memory of a fixed size, whatever the number
// of clients.
//
// A per-client log or ring (caddy-ratelimit keeps 300 timestamps, 7 KB, per
// key) grows with every new client address, and anyone holding an IPv6 /64
// has 2^64 of them: 100,000 addresses cost a gigabyte. The shield instead
// counts in a count-min sketch: Depth rows of Width counters, a client's
// count being the smallest of its Depth counters, each picked by a keyed
// hash. Memory is 2 × Depth × Width × 4 bytes (2 MiB) from the start and
// never more; nothing is ever evicted or swept.
//
// The count of a window is the sliding-window counter approximation: the
// current fixed window's count plus the previous window's weighted by how
// much of it still lies inside the sliding window, so a client cannot
// burst twice across a boundary as it could with a plain fixed window.
//
// A sketch never counts a client below its own requests; it may count it
// above, when other clients' hashes share all of its counters. With
// conservative update (a counter grows only as far as the client's own
// estimate needs) and Width = 65,536, the excess stays below a few hits per
// window until the whole process sees millions of requests per window, far
// past what it can serve. The hash is keyed with a random seed per process,
// so nobody can choose addresses that collide with a victim's.
package shield

import (
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Sketch dimensions. One 64-bit hash gives the Depth 16-bit indices.
const (
	Depth = 4
	Width = 1 << 16
)

// Bytes is the memory of a Shield's counters.
const Bytes = 2 * Depth * Width * 4

// Shield counts requests per client key. It is safe for concurrent use;
// the zero value is not: use New.
type Shield struct {
	events uint32
	window time.Duration
	seed   maphash.Seed
	epoch  time.Time
	clock  func() time.Time

	// gens are the counters of two consecutive fixed windows, indexed by
	// window number modulo 2.
	gens [2]generation
	// rotate is held while a generation is cleared for a new window.
	rotate sync.Mutex
	// stripes make one client's check and count one step: every request of
	// a key takes the same stripe, so concurrent requests of one client
	// cannot all read the same count and pass together. Other clients
	// sharing a counter may raise it meanwhile; that only counts more.
	stripes [stripeCount]sync.Mutex

	refused atomic.Uint64
}

// stripeCount is how many locks the keys are spread over.
const stripeCount = 256

type generation struct {
	// window is the number of the fixed window the cells count, or -1.
	window atomic.Int64
	cells  []atomic.Uint32
}

// New returns a Shield admitting events requests per key in any window.
func New(events int, window time.Duration) *Shield {
	return newShield(events, window, time.Now)
}

func newShield(events int, window time.Duration, clock func() time.Time) *Shield {
	if events < 1 {
		events = 1
	}
	if events > math.MaxUint32/2 {
		events = math.MaxUint32 / 2
	}
	if window < time.Millisecond {
		window = time.Millisecond
	}
	s := &Shield{
		events: uint32(events),
		window: window,
		seed:   maphash.MakeSeed(),
		epoch:  clock(),
		clock:  clock,
	}
	for i := range s.gens {
		s.gens[i].cells = make([]atomic.Uint32, Depth*Width)
		s.gens[i].window.Store(-1)
	}
	return s
}

// Decision is the outcome of Allow.
type Decision struct {
	Allowed bool
	// Count is the client's estimated requests in the sliding window
	// before this one.
	Count int
	// RetryAfter is, for a refusal, how long until the client's estimate
	// falls below the limit if it sends nothing more.
	RetryAfter time.Duration
}

// Allow counts one request of key when the key is under its limit.
// Refused requests are not counted, so a client that stops is admitted
// again after at most two windows however hard it pushed.
func (s *Shield) Allow(key string) Decision {
	now := s.clock().Sub(s.epoch)
	w := int64(now / s.window)
	into := now - time.Duration(w)*s.window
	cur := s.generation(w)
	prev := &s.gens[(w-1)&1]
	if prev.window.Load() != w-1 {
		prev = nil
	}

	h := maphash.String(s.seed, key)
	mu := &s.stripes[h%stripeCount]
	mu.Lock()
	defer mu.Unlock()
	var idx [Depth]int
	c := uint32(math.MaxUint32)
	var p uint32
	if prev != nil {
		p = math.MaxUint32
	}
	for r := range Depth {
		idx[r] = r*Width + int(h>>(16*r))&(Width-1)
		c = min(c, cur.cells[idx[r]].Load())
		if prev != nil {
			p = min(p, prev.cells[idx[r]].Load())
		}
	}
	// The part of the previous window still inside the sliding window.
	weight := float64(s.window-into) / float64(s.window)
	est := float64(c) + float64(p)*weight
	if est >= float64(s.events) {
		s.refused.Add(1)
		return Decision{Count: int(est), RetryAfter: s.retryAfter(c, p, into)}
	}
	// Conservative update: only the counters at the client's minimum
	// grow, so a counter shared with a heavier client is not pushed
	// further. A counter another client raised past c since it was read
	// already holds at least c+1, so this request is counted either way.
	for r := range Depth {
		if cell := &cur.cells[idx[r]]; cell.Load() <= c {
			cell.Add(1)
		}
	}
	return Decision{Allowed: true, Count: int(est)}
}

// retryAfter is how long a client estimated at c in this window and p in
// the previous, into this window, waits for its estimate to drop under the
// limit if it sends nothing: the previous window's share shrinks through
// this window, then this window's through the next.
func (s *Shield) retryAfter(c, p uint32, into time.Duration) time.Duration {
	lim, win := float64(s.events), float64(s.window)
	if c < s.events {
		// c + p*(win-t)/win < lim  ⇔  t > win*(1-(lim-c)/p)
		t := win * (1 - (lim-float64(c))/float64(p))
		return max(time.Duration(t)-into, time.Millisecond)
	}
	// After this window: c*(win-t)/win < lim  ⇔  t > win*(1-lim/c)
	t := win * (1 - lim/float64(c))
	return s.window - into + max(time.Duration(t), time.Millisecond)
}

// generation returns the counters of fixed window w, clearing the older
// window they held first. Requests still counting in the old window while
// it is cleared lose those hits: the guard is coarse by design.
func (s *Shield) generation(w int64) *generation {
	g := &s.gens[w&1]
	if g.window.Load() == w {
		return g
	}
	s.rotate.Lock()
	defer s.rotate.Unlock()
	if g.window.Load() != w {
		for i := range g.cells {
			g.cells[i].Store(0)
		}
		g.window.Store(w)
	}
	return g
}

// Refused counts the requests refused so far. It only grows.
func (s *Shield) Refused() uint64 { return s.refused.Load() }

// Clients estimates how many distinct keys the current window has seen,
// by linear counting over the first row: -Width × ln(share of zero
// counters). It reads every counter of the row (65,536), so call it at
// scrape time, not per request.
func (s *Shield) Clients() float64 {
	w := int64(s.clock().Sub(s.epoch) / s.window)
	g := &s.gens[w&1]
	if g.window.Load() != w {
		return 0
	}
	zero := 0
	for i := range Width {
		if g.cells[i].Load() == 0 {
			zero++
		}
	}
	if zero == 0 {
		// Saturated: the estimate's ceiling.
		return math.Round(Width * math.Log(Width))
	}
	return math.Round(-Width * math.Log(float64(zero)/Width))
}
