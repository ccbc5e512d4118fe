package limiter

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// memShards spreads keys over several locks so unrelated subjects do not
// contend.
const memShards = 32

// evictSample is how many entries of a full shard are looked at to choose
// the one a new key replaces.
const evictSample = 8

// memEntry is the log of one key: admitted hits, oldest first, as offsets
// of the limiter's monotonic clock.
type memEntry struct {
	hits []time.Duration
	// expires is when the newest hit leaves the longest window seen; the
	// sweeper drops the entry then.
	expires time.Duration
}

type memShard struct {
	mu sync.Mutex
	m  map[string]*memEntry
}

// memoryStore runs the sliding-window log in process. Memory stays bounded
// twice over: a key holds at most Limit hits, and the store holds at most
// maxKeys keys (maxKeys/memShards per shard). Keys whose hits have all left
// their window are dropped on access or by the periodic sweep; a new key
// arriving at a full shard evicts, of evictSample entries of that shard
// taken at random, the one whose hits expire soonest: the subject the store
// was closest to forgetting anyway. A flood of new subjects (many client
// addresses) therefore mostly evicts its own short-lived entries, and the
// store's size never depends on how many subjects exist.
//
// An eviction forgets hits, so it can only admit more than a limit, never
// refuse a request wrongly. The limits that guard a secret do not rest on
// this store alone: a code's tries are also counted with the code (in the
// database for local codes, by Twilio Verify for its own).
type memoryStore struct {
	now      func() time.Duration
	seed     maphash.Seed
	shards   [memShards]memShard
	shardMax int

	keys      atomic.Int64
	evictions atomic.Uint64

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func newMemoryStore(now func() time.Duration, sweepEvery time.Duration, maxKeys int) *memoryStore {
	s := &memoryStore{
		now:      now,
		seed:     maphash.MakeSeed(),
		shardMax: max(1, (maxKeys+memShards-1)/memShards),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for i := range s.shards {
		s.shards[i].m = make(map[string]*memEntry)
	}
	go s.sweepLoop(sweepEvery)
	return s
}

func (s *memoryStore) close() {
	s.stopOnce.Do(func() {
		close(s.stop)
		<-s.done
	})
}

func (s *memoryStore) sweepLoop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweep drops expired entries one shard at a time, so callers wait at most
// for one shard.
func (s *memoryStore) sweep() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		now := s.now()
		for k, e := range sh.m {
			if e.expires <= now {
				delete(sh.m, k)
				s.keys.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
}

func (s *memoryStore) shardOf(key string) int {
	return int(maphash.String(s.seed, key) % memShards)
}

func (s *memoryStore) delete(keys []string) {
	for _, k := range keys {
		sh := &s.shards[s.shardOf(k)]
		sh.mu.Lock()
		if _, ok := sh.m[k]; ok {
			delete(sh.m, k)
			s.keys.Add(-1)
		}
		sh.mu.Unlock()
	}
}

// check is the in-process twin of slidingLogScript.
func (s *memoryStore) check(ps []prepared, count bool) Result {
	// Every shard involved is held for the whole check, taken in index
	// order so concurrent multi-rule checks cannot deadlock.
	idx := make([]int, len(ps))
	for i, p := range ps {
		idx[i] = s.shardOf(p.key)
	}
	order := slices.Clone(idx)
	slices.Sort(order)
	order = slices.Compact(order)
	for _, i := range order {
		s.shards[i].mu.Lock()
	}
	defer func() {
		for _, i := range order {
			s.shards[i].mu.Unlock()
		}
	}()

	now := s.now()
	entries := make([]*memEntry, len(ps))
	ok := make([]bool, len(ps))
	all := true
	for i, p := range ps {
		m := s.shards[idx[i]].m
		e := m[p.key]
		if e != nil {
			// Same boundary as the script: a hit exactly one window old is out.
			cut := 0
			for cut < len(e.hits) && e.hits[cut] <= now-p.rule.Window {
				cut++
			}
			if cut > 0 {
				e.hits = e.hits[:copy(e.hits, e.hits[cut:])]
			}
			if len(e.hits) == 0 {
				delete(m, p.key)
				s.keys.Add(-1)
				e = nil
			}
		}
		entries[i] = e
		ok[i] = e == nil || len(e.hits) < p.rule.Limit
		all = all && ok[i]
	}

	if all && count {
		for i, p := range ps {
			e := entries[i]
			if e == nil {
				m := s.shards[idx[i]].m
				if len(m) >= s.shardMax {
					s.evict(m, ps)
				}
				e = &memEntry{hits: make([]time.Duration, 0, min(p.rule.Limit, 4))}
				m[p.key] = e
				s.keys.Add(1)
				entries[i] = e
			}
			e.hits = append(e.hits, now)
			e.expires = max(e.expires, now+p.rule.Window)
		}
	}

	ds := make([]Decision, len(ps))
	for i, p := range ps {
		var n int
		var retry, reset time.Duration
		if e := entries[i]; e != nil {
			n = len(e.hits)
			if !ok[i] {
				retry = e.hits[n-p.rule.Limit] + p.rule.Window - now
			}
			reset = e.hits[n-1] + p.rule.Window - now
		}
		ds[i] = decision(p.rule, ok[i], n, retry, reset, StorageLocal)
	}
	return result(ds, StorageLocal)
}

// evict drops from the full shard map m the entry that expires soonest among
// evictSample taken at random (Go starts every map iteration at a random
// place), never one of the keys of the check in progress, whose entries the
// caller holds.
func (s *memoryStore) evict(m map[string]*memEntry, keep []prepared) {
	var (
		victim string
		soon   time.Duration
		seen   int
	)
next:
	for k, e := range m {
		for _, p := range keep {
			if p.key == k {
				continue next
			}
		}
		if seen == 0 || e.expires < soon {
			victim, soon = k, e.expires
		}
		if seen++; seen == evictSample {
			break
		}
	}
	if seen > 0 {
		delete(m, victim)
		s.keys.Add(-1)
		s.evictions.Add(1)
	}
}
