// Package limiter is the rate limiter of the product: the OTP rules and the
// HTTP rate-limit policies all go through it.
//
// The algorithm is a sliding-window log: a rule admits a hit when fewer than
// Limit hits were admitted in the last Window, measured at the instant of the
// check. Unlike a fixed window it never admits more than Limit in any span of
// length Window (a fixed window admits 2×Limit across its boundary), and unlike
// GCRA a "10 per day" rule means 10 in any 24 hours, not a burst of 10 followed
// by one more every 2.4 hours. Only admitted hits are logged, so a key holds at
// most Limit timestamps and a refused client cannot push its own reset away.
//
// With Redis the whole check (every rule of the call) is one Lua script, one
// round trip, timed by the server's clock: replicas agree however skewed their
// own clocks are, and any number of replicas sharing one Redis admit no more
// than the limit together. When Redis fails the call is answered from an
// in-process store running the same algorithm, which knows only the hits it
// counted itself (limits become per instance for the outage); Redis is tried
// again after a short backoff. Deletions (Reset, Forget) fall back the same
// way: the local store is cleared at once and the Redis keys are remembered,
// in a bounded set, and deleted before anything else is counted on them once
// Redis answers again. No operation returns a Redis error: a caller never has
// to tell a Redis outage from anything else. The keys of one call go to one
// script on a single Redis. On a Redis Cluster (a client whose Mode is
// cluster) the rules over one subject share a hash slot and stay one atomic
// script; rules over different subjects (a client IP and a phone) are
// checked one slot group after another; the first group that refuses
// stops the count and the earlier groups' hits are taken back. Every rule
// still admits at most its limit; between a count and its take-back the
// hit holds a unit, which may refuse a concurrent request (see
// clusterCheck).
//
// Keys never hold the caller's subject (phone number, user id, IP) in clear:
// they carry a truncated HMAC-SHA256 of it.
package limiter

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// Storage names reported in Decision.Storage.
const (
	StorageRedis = "redis"
	StorageLocal = "local"
)

// Defaults for the zero values of Options.
const (
	DefaultPrefix        = "soul:rl:"
	DefaultTimeout       = 200 * time.Millisecond
	DefaultBackoff       = time.Second
	DefaultSweepInterval = time.Minute
	// DefaultMaxLocalKeys bounds the local store: about 200 bytes a key
	// with one hit logged, 1 KB with a hundred.
	DefaultMaxLocalKeys = 100_000
	// DefaultMaxPendingDeletes bounds the Redis deletions waiting for Redis
	// to come back: about 100 bytes each.
	DefaultMaxPendingDeletes = 10_000
)

// flushBatch is how many waiting deletions ride along with one Redis call
// after an outage, on top of those of the call's own keys.
const flushBatch = 64

// hashBytes is how much of the HMAC a key keeps: 128 bits is collision-free
// for any realistic number of subjects and keeps keys short.
const hashBytes = 16

var (
	// ErrInvalidRule reports a rule that cannot be enforced.
	ErrInvalidRule = errors.New("limiter: invalid rule")
	// ErrInvalidCheck reports an empty key, an empty check list or the same
	// rule and key twice in one call.
	ErrInvalidCheck = errors.New("limiter: invalid check")
)

// Rule is one limit: at most Limit hits in any span of Window.
//
// Name identifies the counter, so two rules with one Name share their hits;
// changing Limit or Window of a named rule keeps the hits already logged.
type Rule struct {
	Name   string
	Limit  int
	Window time.Duration
}

func (r Rule) validate() error {
	if r.Name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidRule)
	}
	for _, c := range r.Name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			// Keeps ':' out of the name, so a key splits unambiguously.
			return fmt.Errorf("%w: name %q: only letters, digits, '_', '-' and '.'", ErrInvalidRule, r.Name)
		}
	}
	if r.Limit < 1 {
		return fmt.Errorf("%w: %s: limit %d < 1", ErrInvalidRule, r.Name, r.Limit)
	}
	// Redis expires keys to the millisecond.
	if r.Window < time.Millisecond {
		return fmt.Errorf("%w: %s: window %s < 1ms", ErrInvalidRule, r.Name, r.Window)
	}
	return nil
}

// Check is one rule applied to one subject.
type Check struct {
	Rule Rule
	// Key is the subject in clear (phone, user id, client IP); it is hashed
	// before it reaches any store.
	Key string
}

// Decision is the state of one rule for one subject after a call.
type Decision struct {
	Rule Rule
	// Allowed reports whether this rule had room for the hit. In AllowAll the
	// hit is counted only when every rule had room (Result.Allowed).
	Allowed bool
	Limit   int
	// Remaining is the room left in the window after this call.
	Remaining int
	// ResetAfter is the time until the window holds no hits (full quota).
	ResetAfter time.Duration
	// RetryAfter is the time until this rule admits a hit again; zero when
	// Allowed.
	RetryAfter time.Duration
	// Storage is StorageRedis or StorageLocal: which store answered.
	Storage string
}

// Result is the outcome of AllowAll.
type Result struct {
	// Allowed is true when every rule had room; only then is the hit counted.
	Allowed bool
	// RetryAfter is the longest RetryAfter of the refusing rules.
	RetryAfter time.Duration
	Storage    string
	// Decisions holds one Decision per check, in the order given.
	Decisions []Decision
}

// Tightest returns the decision a response should report: the refusing rule
// that waits longest, or when none refuses the one with the least room left.
func (r Result) Tightest() Decision {
	var best Decision
	for i, d := range r.Decisions {
		if i == 0 || tighter(d, best) {
			best = d
		}
	}
	return best
}

func tighter(a, b Decision) bool {
	if a.Allowed != b.Allowed {
		return !a.Allowed
	}
	if !a.Allowed {
		return a.RetryAfter > b.RetryAfter
	}
	if a.Remaining != b.Remaining {
		return a.Remaining < b.Remaining
	}
	return a.ResetAfter > b.ResetAfter
}

// Options configures a Limiter.
type Options struct {
	// Client is the shared Redis. Nil keeps every limit in process memory
	// (the embedded mode); the Limiter does not close it.
	Client rueidis.Client
	// HashKey keys the HMAC that hides subjects in storage keys. Required;
	// at least 32 random bytes are advised.
	HashKey []byte
	// Prefix starts every storage key; DefaultPrefix when empty. It must
	// hold no '{' or '}', which would change the keys' hash slots on a
	// Redis Cluster.
	Prefix string
	// Timeout bounds each Redis call so a slow Redis degrades to the local
	// store instead of stalling requests; DefaultTimeout when zero.
	Timeout time.Duration
	// Backoff is how long Redis is skipped after it failed; DefaultBackoff
	// when zero.
	Backoff time.Duration
	// SweepInterval is how often the local store drops expired entries;
	// DefaultSweepInterval when zero.
	SweepInterval time.Duration
	// MaxLocalKeys bounds the keys the local store holds; past it a new
	// key evicts an old one (see memoryStore). DefaultMaxLocalKeys when
	// zero.
	MaxLocalKeys int
	// MaxPendingDeletes bounds the Redis deletions kept while Redis is
	// down; past it a deletion is dropped (counted by DroppedDeletes) and
	// its key expires with its window. DefaultMaxPendingDeletes when zero.
	MaxPendingDeletes int
	// OnRedisError, when set, is called with each Redis failure that sends
	// calls to the local store. At most one failure per Backoff reaches it
	// in steady state, so it may log.
	OnRedisError func(error)
}

// Limiter enforces rules against Redis, or process memory when Redis is
// absent or failing. It is safe for concurrent use.
type Limiter struct {
	client       rueidis.Client
	cluster      bool
	hashKey      []byte
	prefix       string
	timeout      time.Duration
	backoff      time.Duration
	onRedisError func(error)

	mem   *memoryStore
	epoch time.Time
	clock func() time.Time

	macs sync.Pool
	// seen holds the names of the rules checked so far, for Forget.
	seen sync.Map

	// downUntil is the monotonic instant (see now) before which Redis is
	// skipped; zero while Redis is healthy.
	downUntil atomic.Int64
	fallbacks atomic.Uint64

	pending pendingDeletes
}

// New returns a Limiter. Close it to stop the local store's sweeper.
func New(opts Options) (*Limiter, error) {
	return newLimiter(opts, time.Now)
}

func newLimiter(opts Options, clock func() time.Time) (*Limiter, error) {
	if len(opts.HashKey) == 0 {
		return nil, errors.New("limiter: HashKey is required")
	}
	l := &Limiter{
		client:       opts.Client,
		cluster:      opts.Client != nil && opts.Client.Mode() == rueidis.ClientModeCluster,
		hashKey:      append([]byte(nil), opts.HashKey...),
		prefix:       opts.Prefix,
		timeout:      opts.Timeout,
		backoff:      opts.Backoff,
		onRedisError: opts.OnRedisError,
		epoch:        clock(),
		clock:        clock,
	}
	if l.prefix == "" {
		l.prefix = DefaultPrefix
	}
	if strings.ContainsAny(l.prefix, "{}") {
		return nil, fmt.Errorf("limiter: prefix %q holds a brace, which would change hash slots", l.prefix)
	}
	if l.timeout <= 0 {
		l.timeout = DefaultTimeout
	}
	if l.backoff <= 0 {
		l.backoff = DefaultBackoff
	}
	sweep := opts.SweepInterval
	if sweep <= 0 {
		sweep = DefaultSweepInterval
	}
	maxKeys := opts.MaxLocalKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxLocalKeys
	}
	l.pending.max = opts.MaxPendingDeletes
	if l.pending.max <= 0 {
		l.pending.max = DefaultMaxPendingDeletes
	}
	l.macs.New = func() any { return hmac.New(sha256.New, l.hashKey) }
	l.mem = newMemoryStore(l.now, sweep, maxKeys)
	return l, nil
}

// Close stops the local store's background sweep. It does not close the
// Redis client, which the caller owns. Calls after Close still answer.
func (l *Limiter) Close() error {
	l.mem.close()
	return nil
}

// now is the time since the Limiter was made, read from the monotonic clock
// so wall-clock steps cannot stretch or shrink local windows.
func (l *Limiter) now() time.Duration {
	return l.clock().Sub(l.epoch)
}

// Fallbacks counts the calls answered by the local store because Redis
// failed or was being skipped after a failure. It only grows; export it as a
// counter.
func (l *Limiter) Fallbacks() uint64 {
	return l.fallbacks.Load()
}

// LocalKeys is the number of keys the local store holds now (at most
// MaxLocalKeys); export it as a gauge.
func (l *Limiter) LocalKeys() int { return int(l.mem.keys.Load()) }

// LocalEvictions counts the keys the local store evicted to stay within
// MaxLocalKeys. It only grows.
func (l *Limiter) LocalEvictions() uint64 { return l.mem.evictions.Load() }

// PendingDeletes is the number of Redis deletions waiting for Redis to
// answer again (at most MaxPendingDeletes); export it as a gauge.
func (l *Limiter) PendingDeletes() int { return l.pending.len() }

// DroppedDeletes counts the Redis deletions given up because the waiting
// set was full; their keys expire with their windows. It only grows.
func (l *Limiter) DroppedDeletes() uint64 { return l.pending.dropped.Load() }

// Storage names the store the next call is expected to use: StorageRedis
// when Redis is configured and not in backoff after a failure, else
// StorageLocal.
func (l *Limiter) Storage() string {
	if l.client == nil {
		return StorageLocal
	}
	if d := l.downUntil.Load(); d != 0 && int64(l.now()) < d {
		return StorageLocal
	}
	return StorageRedis
}

// Probe asks Redis once whether it answers, within ctx, and returns the
// store calls use from now on: StorageRedis when it answered, StorageLocal
// when Redis is not configured, is in backoff after a failure, or did not
// answer. A failed probe counts as a failed call (OnRedisError, backoff),
// so Redis is tried again by itself. Startup logs use it to say which
// storage is in use rather than which one is configured.
func (l *Limiter) Probe(ctx context.Context) string {
	if l.client == nil || !l.tryRedis() {
		return StorageLocal
	}
	if err := l.client.Do(ctx, l.client.B().Ping().Build()).Error(); err != nil {
		l.markDown(fmt.Errorf("limiter: redis ping: %w", err))
		return StorageLocal
	}
	l.redisUp()
	return StorageRedis
}

// Allow counts a hit for key under rule when the rule has room.
func (l *Limiter) Allow(ctx context.Context, rule Rule, key string) (Decision, error) {
	d, _, err := l.AllowMarked(ctx, rule, key, "")
	return d, err
}

// AllowMarked is Allow that also reads the marker named marker (see
// Marker) in the same Redis round trip. The marker is MarkerUnknown when
// the local store answered, or marker is empty.
func (l *Limiter) AllowMarked(ctx context.Context, rule Rule, key, marker string) (Decision, Marker, error) {
	var one [1]Check
	one[0] = Check{Rule: rule, Key: key}
	res, m, err := l.doMarked(ctx, one[:], true, marker)
	if err != nil {
		return Decision{}, MarkerUnknown, err
	}
	return res.Decisions[0], m, nil
}

// AllowAll checks every rule in one atomic step (one Redis round trip) and
// counts the hit against all of them only when all have room, so a request
// refused by one rule does not spend the budget of the others.
func (l *Limiter) AllowAll(ctx context.Context, checks ...Check) (Result, error) {
	return l.do(ctx, checks, true)
}

// Peek reports whether rule would admit a hit for key now, without counting
// one.
func (l *Limiter) Peek(ctx context.Context, rule Rule, key string) (Decision, error) {
	res, err := l.do(ctx, []Check{{Rule: rule, Key: key}}, false)
	if err != nil {
		return Decision{}, err
	}
	return res.Decisions[0], nil
}

// Reset clears the hits of key under rule, e.g. the wrong-code counter when
// a new code is sent. The local store is cleared at once; when Redis fails
// or is in backoff, its key is deleted once Redis answers again, before any
// hit is counted on it there. Only an invalid rule or key is an error.
func (l *Limiter) Reset(ctx context.Context, rule Rule, key string) error {
	if err := rule.validate(); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidCheck)
	}
	return l.deleteKeys(ctx, []string{l.storageKey(rule.Name, key)})
}

// Register makes Forget cover rules from now on, as if they had been
// checked. Handlers register the rules they may apply to a user or a phone
// when they are provisioned, so an account deleted right after a restart,
// before any request has used those rules, loses their entries too.
func (l *Limiter) Register(rules ...Rule) error {
	for _, r := range rules {
		if err := r.validate(); err != nil {
			return err
		}
	}
	for _, r := range rules {
		l.seen.Store(r.Name, struct{}{})
	}
	return nil
}

// StorageKey is the storage key of key's entry under the named rule: what
// Redis holds, the subject hidden by the HMAC. Tests use it to check that
// an entry exists, or that Forget removed it.
func (l *Limiter) StorageKey(rule, key string) string {
	return l.storageKey(rule, key)
}

// Forget deletes every limiter entry derived from key (for account
// deletion): under the rules given and under every rule this Limiter has
// checked or had registered since it started. Keys name their rule, so
// pass or Register every rule that may have been applied to key; the rest
// expire with their windows. Redis keys it cannot delete now are deleted
// once Redis answers again, as for Reset, unless this process stops first
// or the waiting set is full (DroppedDeletes): those expire with their
// windows.
func (l *Limiter) Forget(ctx context.Context, key string, rules ...Rule) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidCheck)
	}
	names := make(map[string]struct{}, len(rules))
	for _, r := range rules {
		if r.Name == "" {
			return fmt.Errorf("%w: empty name", ErrInvalidRule)
		}
		names[r.Name] = struct{}{}
	}
	l.seen.Range(func(k, _ any) bool {
		names[k.(string)] = struct{}{}
		return true
	})
	keys := make([]string, 0, len(names))
	for name := range names {
		keys = append(keys, l.storageKey(name, key))
	}
	return l.deleteKeys(ctx, keys)
}

// deleteKeys clears keys from the local store and from Redis. What Redis
// cannot take now waits in l.pending, so a deletion never fails for an
// outage and never holds a request up for longer than one Redis timeout.
func (l *Limiter) deleteKeys(ctx context.Context, keys []string) error {
	l.mem.delete(keys)
	if l.client == nil || len(keys) == 0 {
		return nil
	}
	if !l.tryRedis() {
		l.pending.add(keys)
		return nil
	}
	batch := l.pending.take(nil, flushBatch)
	if err := l.redisDelete(ctx, append(batch, keys...)); err != nil {
		if ctx.Err() == nil {
			l.markDown(fmt.Errorf("limiter: redis delete: %w", err))
		}
		l.pending.add(batch)
		l.pending.add(keys)
		return nil
	}
	l.redisUp()
	return nil
}

// prepared is a Check with its storage key computed.
type prepared struct {
	rule Rule
	key  string
}

func (l *Limiter) do(ctx context.Context, checks []Check, count bool) (Result, error) {
	res, _, err := l.doMarked(ctx, checks, count, "")
	return res, err
}

func (l *Limiter) doMarked(ctx context.Context, checks []Check, count bool, marker string) (Result, Marker, error) {
	if len(checks) == 0 {
		return Result{}, MarkerUnknown, fmt.Errorf("%w: no checks", ErrInvalidCheck)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, MarkerUnknown, err
	}
	ps := make([]prepared, len(checks))
	for i, c := range checks {
		if err := c.Rule.validate(); err != nil {
			return Result{}, MarkerUnknown, err
		}
		if c.Key == "" {
			return Result{}, MarkerUnknown, fmt.Errorf("%w: %s: empty key", ErrInvalidCheck, c.Rule.Name)
		}
		ps[i] = prepared{rule: c.Rule, key: l.storageKey(c.Rule.Name, c.Key)}
		for j := 0; j < i; j++ {
			// The same key twice would be counted twice in one call.
			if ps[j].key == ps[i].key {
				return Result{}, MarkerUnknown, fmt.Errorf("%w: %s checked twice for one key", ErrInvalidCheck, c.Rule.Name)
			}
		}
		if _, ok := l.seen.Load(c.Rule.Name); !ok {
			l.seen.Store(c.Rule.Name, struct{}{})
		}
	}

	if l.client != nil {
		if l.tryRedis() {
			mkey := ""
			if marker != "" {
				mkey = l.markerKey(marker)
			}
			res, m, err := l.redisCall(ctx, ps, count, mkey)
			if err == nil {
				l.redisUp()
				return res, m, nil
			}
			if ctx.Err() != nil {
				// The caller gave up; that says nothing about Redis.
				return Result{}, MarkerUnknown, ctx.Err()
			}
			l.markDown(err)
		}
		l.fallbacks.Add(1)
	}
	return l.mem.check(ps, count), MarkerUnknown, nil
}

// redisCall is one check on Redis. Deletions that waited out an outage go
// first: always those of the call's own keys, so no hit is counted on a key
// that should be gone, and a batch of the others. In steady state nothing
// waits and the check is the one round trip of the script.
func (l *Limiter) redisCall(ctx context.Context, ps []prepared, count bool, marker string) (Result, Marker, error) {
	if l.pending.len() > 0 {
		own := make([]string, 0, len(ps)+1)
		for _, p := range ps {
			own = append(own, p.key)
		}
		if marker != "" {
			// A marker whose rewrite failed must not be read stale.
			own = append(own, marker)
		}
		batch := l.pending.take(own, flushBatch)
		if len(batch) > 0 {
			if err := l.redisDelete(ctx, batch); err != nil {
				l.pending.add(batch)
				return Result{}, MarkerUnknown, fmt.Errorf("limiter: redis delete: %w", err)
			}
		}
	}
	return l.redisCheck(ctx, ps, count, marker)
}

// tryRedis reports whether this call should go to Redis. After a failure
// Redis is skipped until the backoff ends; then a single caller probes it
// while the others keep answering locally.
func (l *Limiter) tryRedis() bool {
	d := l.downUntil.Load()
	if d == 0 {
		return true
	}
	now := int64(l.now())
	if now < d {
		return false
	}
	return l.downUntil.CompareAndSwap(d, now+int64(l.backoff))
}

// redisUp clears the backoff. It reads first so the healthy path does not
// write to a cache line that every core shares.
func (l *Limiter) redisUp() {
	if l.downUntil.Load() != 0 {
		l.downUntil.Store(0)
	}
}

func (l *Limiter) markDown(err error) {
	l.downUntil.Store(int64(l.now() + l.backoff))
	if l.onRedisError != nil {
		l.onRedisError(err)
	}
}

// storageKey is prefix + "{" + hex(HMAC(subject)) + "}:" + rule name.
// The braces make the subject's hash the key's hash tag, so on a Redis
// Cluster every rule over one subject (a phone's otp_send and
// otp_send_day) lands in one slot and is checked in one atomic script.
// The price: one subject's entries under different rules share their tag
// and can be linked to each other, though not to the subject. The rule
// name comes last and holds no ':' or braces (see Rule.validate).
func (l *Limiter) storageKey(rule, key string) string {
	m := l.macs.Get().(hash.Hash)
	m.Reset()
	// A leading byte of its own keeps the subject's hash apart from the
	// marker's (see markerKey).
	m.Write([]byte("\x01subject\x00"))
	m.Write([]byte(key))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	l.macs.Put(m)

	b := make([]byte, 0, len(l.prefix)+2*hashBytes+3+len(rule))
	b = append(b, l.prefix...)
	b = append(b, '{')
	b = hex.AppendEncode(b, sum[:hashBytes])
	b = append(b, "}:"...)
	b = append(b, rule...)
	return string(b)
}

// decision builds a Decision from the raw state of one rule; times are in
// the store's unit and clamped to the window against clock oddities.
func decision(r Rule, ok bool, count int, retry, reset time.Duration, storage string) Decision {
	remaining := r.Limit - count
	if remaining < 0 {
		remaining = 0
	}
	if ok {
		retry = 0
	}
	return Decision{
		Rule:       r,
		Allowed:    ok,
		Limit:      r.Limit,
		Remaining:  remaining,
		ResetAfter: clamp(reset, r.Window),
		RetryAfter: clamp(retry, r.Window),
		Storage:    storage,
	}
}

func clamp(d, max time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	if d > max {
		return max
	}
	return d
}

func result(ds []Decision, storage string) Result {
	res := Result{Allowed: true, Storage: storage, Decisions: ds}
	for _, d := range ds {
		if !d.Allowed {
			res.Allowed = false
			if d.RetryAfter > res.RetryAfter {
				res.RetryAfter = d.RetryAfter
			}
		}
	}
	return res
}
