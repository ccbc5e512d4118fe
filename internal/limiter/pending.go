package limiter

import (
	"sync"
	"sync/atomic"
)

// pendingDeletes holds the Redis keys that a Reset or Forget could not
// delete while Redis was down or in backoff. They are deleted once Redis
// answers again: a key of a check before that check is counted, the rest a
// batch at a time along with later calls. The set is bounded by max; a
// deletion past it is dropped and counted, and its key then expires with
// its window, as every limiter key does.
//
// A key taken for deletion by one call may meanwhile be counted by another
// on Redis, whose hit the deletion then removes: right after an outage a
// subject may get one hit more than its limit, as the per-instance limits of
// the outage already allow.
type pendingDeletes struct {
	mu      sync.Mutex
	keys    map[string]struct{}
	max     int
	size    atomic.Int64
	dropped atomic.Uint64
}

func (p *pendingDeletes) len() int { return int(p.size.Load()) }

func (p *pendingDeletes) add(keys []string) {
	if len(keys) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keys == nil {
		p.keys = make(map[string]struct{})
	}
	for _, k := range keys {
		if _, ok := p.keys[k]; ok {
			continue
		}
		if len(p.keys) >= p.max {
			p.dropped.Add(1)
			continue
		}
		p.keys[k] = struct{}{}
	}
	p.size.Store(int64(len(p.keys)))
}

// take removes and returns the waiting keys among own, and up to n others.
func (p *pendingDeletes) take(own []string, n int) []string {
	if p.size.Load() == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, k := range own {
		if _, ok := p.keys[k]; ok {
			delete(p.keys, k)
			out = append(out, k)
		}
	}
	for k := range p.keys {
		if n <= 0 {
			break
		}
		delete(p.keys, k)
		out = append(out, k)
		n--
	}
	p.size.Store(int64(len(p.keys)))
	if len(p.keys) == 0 {
		// A map keeps its buckets after deletes: let the outage's go.
		p.keys = nil
	}
	return out
}

// has reports whether key waits for deletion.
func (p *pendingDeletes) has(key string) bool {
	if p.size.Load() == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.keys[key]
	return ok
}
