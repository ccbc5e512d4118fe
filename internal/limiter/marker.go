package limiter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Marker is the state of a small flag kept beside the limits, shared by
// every replica through Redis: the auth package keeps one per session, so
// a request learns whether its session is still open in the round trip of
// its rate limit instead of asking the database. A marker only ever
// caches what the database holds; MarkerUnknown and MarkerAbsent send the
// caller to the database.
type Marker int8

// The states of a Marker.
const (
	// MarkerUnknown: Redis is not configured, did not answer, or a rewrite
	// of the marker still waits for it (see SetMarker).
	MarkerUnknown Marker = iota
	// MarkerAbsent: Redis answered and holds no such marker.
	MarkerAbsent
	// MarkerLive and MarkerRevoked are the two values a marker holds.
	MarkerLive
	MarkerRevoked
)

func (m Marker) String() string {
	switch m {
	case MarkerAbsent:
		return "absent"
	case MarkerLive:
		return "live"
	case MarkerRevoked:
		return "revoked"
	}
	return "unknown"
}

// markerOf reads the value the script answers for a marker (0 when absent).
func markerOf(v int64) Marker {
	switch v {
	case 0:
		return MarkerAbsent
	case int64(MarkerLive):
		return MarkerLive
	case int64(MarkerRevoked):
		return MarkerRevoked
	}
	return MarkerUnknown
}

// markerKey is prefix + "marker:" + hex(HMAC("\x00marker", name)). The
// leading zero byte keeps it apart from every rule's key, whose HMAC
// starts with the rule's name (never empty, never a zero byte).
func (l *Limiter) markerKey(name string) string {
	m := l.macs.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte("\x00marker\x00"))
	m.Write([]byte(name))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	l.macs.Put(m)
	b := make([]byte, 0, len(l.prefix)+len("marker:")+2*hashBytes)
	b = append(b, l.prefix...)
	b = append(b, "marker:"...)
	b = hex.AppendEncode(b, sum[:hashBytes])
	return string(b)
}

// MarkerKey is the Redis key of the named marker, for tests.
func (l *Limiter) MarkerKey(name string) string { return l.markerKey(name) }

// Marker reads the named marker: one Redis GET. Without Redis, or while it
// fails, it is MarkerUnknown.
func (l *Limiter) Marker(ctx context.Context, name string) Marker {
	if l.client == nil || !l.tryRedis() {
		return MarkerUnknown
	}
	key := l.markerKey(name)
	if l.pending.has(key) {
		// Its rewrite failed: what Redis holds may be stale.
		return MarkerUnknown
	}
	cctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	v, err := l.client.Do(cctx, l.client.B().Get().Key(key).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		l.redisUp()
		return MarkerAbsent
	}
	if err != nil {
		if ctx.Err() == nil {
			l.markDown(fmt.Errorf("limiter: redis get: %w", err))
		}
		return MarkerUnknown
	}
	l.redisUp()
	n, err := strconv.ParseInt(v, 10, 8)
	if err != nil {
		return MarkerUnknown
	}
	return markerOf(n)
}

// SetMarker writes the named marker for ttl. With onlyIfAbsent (SET NX) it
// fills a cache and never overwrites what another replica wrote meanwhile:
// a revocation always wins over a fill that read the database before it.
// A write that is not a fill (a revocation) and that Redis does not take
// leaves the marker's key among the pending deletions: it is deleted once
// Redis answers again, before this process reads it, so a stale value is
// read neither here nor, once this process reaches Redis, anywhere. It
// never fails: a marker is only a cache of the database.
func (l *Limiter) SetMarker(ctx context.Context, name string, m Marker, ttl time.Duration, onlyIfAbsent bool) {
	if l.client == nil || (m != MarkerLive && m != MarkerRevoked) || ttl < time.Millisecond {
		return
	}
	key := l.markerKey(name)
	if !l.tryRedis() {
		if !onlyIfAbsent {
			l.pending.add([]string{key})
		}
		return
	}
	cctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	val := strconv.Itoa(int(m))
	var cmd rueidis.Completed
	if onlyIfAbsent {
		cmd = l.client.B().Set().Key(key).Value(val).Nx().PxMilliseconds(ttl.Milliseconds()).Build()
	} else {
		cmd = l.client.B().Set().Key(key).Value(val).PxMilliseconds(ttl.Milliseconds()).Build()
	}
	err := l.client.Do(cctx, cmd).Error()
	if err != nil && !rueidis.IsRedisNil(err) { // NX that found the key answers nil
		if ctx.Err() == nil {
			l.markDown(fmt.Errorf("limiter: redis set: %w", err))
		}
		if !onlyIfAbsent {
			l.pending.add([]string{key})
		}
		return
	}
	l.redisUp()
}
