package limiter

import (
	"hash/maphash"
	"slices"
	"sync"
	"time"
)

// memShards spreads keys over several locks so unrelated subjects do not
// contend.
const memShards = 32

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

// memoryStore runs the sliding-window log in process. Memory stays bounded:
// a key holds at most Limit hits, and keys whose hits have all left their
// window are dropped on access or by the periodic sweep.
type memoryStore struct {
	now    func() time.Duration
	seed   maphash.Seed
	shards [memShards]memShard

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func newMemoryStore(now func() time.Duration, sweepEvery time.Duration) *memoryStore {
	s := &memoryStore{
		now:  now,
		seed: maphash.MakeSeed(),
		stop: make(chan struct{}),
		done: make(chan struct{}),
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
		delete(sh.m, k)
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
				e = &memEntry{hits: make([]time.Duration, 0, min(p.rule.Limit, 8))}
				s.shards[idx[i]].m[p.key] = e
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
