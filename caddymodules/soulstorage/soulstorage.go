// Package soulstorage is `caddy.storage.soul_redis`: Caddy's certificate
// storage (certmagic.Storage) on Redis, so every replica serves the same
// certificates and only one of them talks to the ACME CA at a time.
//
// Values live in one hash per key (value and modification time) and every
// key is also a member of one sorted set, which List and Delete walk in
// lexical order to see "directories". Store and Delete are Lua scripts, so
// the value and the index never disagree. Locks are rueidislock locks: held
// while the holder renews them, they expire LockValidity after a holder
// dies. The Delete script touches keys it does not declare; on a Redis
// Cluster (a URL with cluster=1) every value and the index therefore share
// one hash slot: the prefix becomes a hash tag, "{soul:caddy:}v:…", so both
// scripts stay in one slot. Certificates are few, so one slot is no
// burden. A single Redis keeps the keys as they were ("soul:caddy:v:…").
// Lock keys are rueidislock's, which it spreads and takes per key.
//
// With no URL (the embedded mode, REDIS_URL unset) it hands Caddy its
// default file storage instead, so one Caddyfile serves both modes.
package soulstorage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"
	"go.uber.org/zap"

	"github.com/soulapp/soul/internal/redisurl"
)

func init() {
	caddy.RegisterModule(Storage{})
}

// Defaults for unset fields.
const (
	DefaultPrefix       = "soul:caddy:"
	DefaultLockValidity = 10 * time.Second
	// callTimeout bounds each Redis call made without a deadline.
	callTimeout = 10 * time.Second
)

// Storage keeps Caddy's certificates, ACME accounts and locks in Redis.
type Storage struct {
	// The Redis URL (redis:// or rediss://); placeholders such as
	// {env.REDIS_URL} are resolved at load. Empty selects Caddy's default
	// file storage.
	URL string `json:"url,omitempty"`
	// Starts every Redis key. Default "soul:caddy:".
	Prefix string `json:"prefix,omitempty"`
	// How long a lock outlives a holder that stopped renewing it (crashed,
	// lost Redis). Default 10s.
	LockValidity caddy.Duration `json:"lock_validity,omitempty"`

	res     *resource
	poolKey string
	logger  *zap.Logger
}

// resource is one Redis connection with its lock state, shared by the
// configs that name the same URL, prefix and validity.
type resource struct {
	client rueidis.Client
	locker rueidislock.Locker
	prefix string
	index  string

	mu    sync.Mutex
	locks map[string]context.CancelFunc
}

func (r *resource) Destruct() error {
	r.mu.Lock()
	for name, unlock := range r.locks {
		unlock()
		delete(r.locks, name)
	}
	r.mu.Unlock()
	r.locker.Close() // closes the client too
	return nil
}

var pool = caddy.NewUsagePool()

// connect opens the Redis client and the locker. A Redis that does not
// answer yet is not fatal: the client keeps dialling, and the storage works
// once Redis is up (certificates already in memory keep being served).
func connect(opt rueidis.ClientOption, cluster bool, prefix string, validity time.Duration, logger *zap.Logger) (*resource, error) {
	keys := prefix
	if cluster {
		// One hash slot for the values and the index (see the package doc).
		keys = "{" + prefix + "}"
	}
	opt.Dialer.Timeout = 2 * time.Second
	opt.ConnWriteTimeout = 5 * time.Second
	opt.ClientName = "soul-storage"
	addr := strings.Join(opt.InitAddress, ",")
	locker, err := rueidislock.NewLocker(rueidislock.LockerOption{
		ClientOption: opt,
		KeyPrefix:    prefix + "lock",
		KeyValidity:  validity,
		ClientBuilder: func(o rueidis.ClientOption) (rueidis.Client, error) {
			c, err := rueidis.NewClient(o)
			if c != nil && err != nil {
				logger.Warn("certificate storage: redis unreachable at start; retrying", zap.String("redis", addr), zap.Error(err))
				err = nil
			}
			return c, err
		},
	})
	if err != nil {
		return nil, fmt.Errorf("soul_redis storage: connecting to %s: %w", addr, err)
	}
	return &resource{
		client: locker.Client(),
		locker: locker,
		prefix: keys + "v:",
		index:  keys + "index",
		locks:  make(map[string]context.CancelFunc),
	}, nil
}

// CaddyModule returns the Caddy module information.
func (Storage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.storage.soul_redis",
		New: func() caddy.Module { return new(Storage) },
	}
}

// Provision resolves the URL and connects, or reuses the connection of the
// previous config.
func (s *Storage) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	raw := strings.TrimSpace(repl.ReplaceAll(s.URL, ""))
	if s.Prefix == "" {
		s.Prefix = DefaultPrefix
	}
	if s.LockValidity <= 0 {
		s.LockValidity = caddy.Duration(DefaultLockValidity)
	}
	if raw == "" {
		s.logger.Info("certificate storage: file system (no Redis URL)")
		return nil
	}
	opt, cluster, err := redisurl.Options(raw)
	if err != nil {
		return fmt.Errorf("soul_redis storage: %w", err)
	}
	if strings.ContainsAny(s.Prefix, "{}") {
		return fmt.Errorf("soul_redis storage: prefix %q holds a brace, which would change hash slots", s.Prefix)
	}
	s.poolKey = raw + "\x00" + s.Prefix + "\x00" + strconv.FormatInt(int64(s.LockValidity), 10)
	val, _, err := pool.LoadOrNew(s.poolKey, func() (caddy.Destructor, error) {
		return connect(opt, cluster, s.Prefix, time.Duration(s.LockValidity), s.logger)
	})
	if err != nil {
		s.poolKey = ""
		return err
	}
	s.res = val.(*resource)
	s.logger.Info("certificate storage: redis", zap.String("redis", host(raw)), zap.String("prefix", s.Prefix))
	return nil
}

// Cleanup lets go of the shared connection.
func (s *Storage) Cleanup() error {
	if s.poolKey == "" {
		return nil
	}
	_, err := pool.Delete(s.poolKey)
	s.poolKey = ""
	return err
}

// CertMagicStorage returns the storage Caddy uses.
func (s *Storage) CertMagicStorage() (certmagic.Storage, error) {
	if s.res == nil {
		return caddy.DefaultStorage, nil
	}
	return s, nil
}

// host names the server of a URL without its credentials, for logs.
func host(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "redis"
	}
	return u.Host
}

// clean turns a certmagic key into the stored form: no leading, trailing
// or doubled slashes.
func clean(key string) string {
	key = strings.Trim(path.Clean("/"+key), "/")
	if key == "." {
		return ""
	}
	return key
}

// bounded gives ctx a deadline when it has none, so a Redis that stops
// answering cannot hang certificate maintenance.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, callTimeout)
}

// Store writes the value and its modification time and indexes the key.
var storeScript = rueidis.NewLuaScript(`
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'm', ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
return 1`)

// Delete removes the key and every key under "key/" (a directory).
var deleteScript = rueidis.NewLuaScript(`
local vprefix, key = ARGV[1], ARGV[2]
local gone = {}
if key ~= '' then
  redis.call('DEL', vprefix .. key)
  redis.call('ZREM', KEYS[1], key)
end
local lo, hi = '-', '+'
if key ~= '' then lo, hi = '[' .. key .. '/', '(' .. key .. '0' end
while true do
  local under = redis.call('ZRANGEBYLEX', KEYS[1], lo, hi, 'LIMIT', 0, 500)
  if #under == 0 then break end
  for i, k in ipairs(under) do
    redis.call('DEL', vprefix .. k)
  end
  redis.call('ZREM', KEYS[1], unpack(under))
end
return 1`)

// Store puts value at key.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	key = clean(key)
	if key == "" {
		return errors.New("soul_redis storage: empty key")
	}
	r := s.res
	err := storeScript.Exec(ctx, r.client, []string{r.prefix + key, r.index},
		[]string{string(value), strconv.FormatInt(time.Now().UnixMilli(), 10), key}).Error()
	if err != nil {
		return fmt.Errorf("soul_redis storage: store %s: %w", key, err)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	key = clean(key)
	r := s.res
	b, err := r.client.Do(ctx, r.client.B().Hget().Key(r.prefix+key).Field("v").Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("soul_redis storage: load %s: %w", key, err)
	}
	return b, nil
}

// Delete deletes key and, when it is a directory, every key under it.
// Deleting a key that does not exist is not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	key = clean(key)
	r := s.res
	if err := deleteScript.Exec(ctx, r.client, []string{r.index}, []string{r.prefix, key}).Error(); err != nil {
		return fmt.Errorf("soul_redis storage: delete %s: %w", key, err)
	}
	return nil
}

// Exists reports whether key is a value or a directory.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	info, err := s.Stat(ctx, key)
	return err == nil && info.Key != ""
}

// Stat describes key: a value (terminal) or a directory.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	key = clean(key)
	r := s.res
	c := r.client
	lo, hi := dirRange(key)
	res := c.DoMulti(ctx,
		c.B().Hget().Key(r.prefix+key).Field("m").Build(),
		c.B().Hstrlen().Key(r.prefix+key).Field("v").Build(),
		c.B().Zrange().Key(r.index).Min(lo).Max(hi).Bylex().Limit(0, 1).Build(),
	)
	for _, re := range res {
		if err := re.Error(); err != nil && !rueidis.IsRedisNil(err) {
			return certmagic.KeyInfo{}, fmt.Errorf("soul_redis storage: stat %s: %w", key, err)
		}
	}
	if ms, err := res[0].AsInt64(); err == nil {
		size, _ := res[1].AsInt64()
		return certmagic.KeyInfo{Key: key, Modified: time.UnixMilli(ms), Size: size, IsTerminal: true}, nil
	}
	if under, _ := res[2].AsStrSlice(); len(under) > 0 && key != "" {
		return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{}, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
}

// dirRange is the lexical range of the keys under dir ("" is the root).
// '0' follows '/', so "(dir0" ends the range right after "dir/…".
func dirRange(dir string) (lo, hi string) {
	if dir == "" {
		return "-", "+"
	}
	return "[" + dir + "/", "(" + dir + "0"
}

// List returns the keys in dir: its direct entries (values and
// directories), or with recursive every key and directory below it. A
// directory that holds nothing is an error wrapping fs.ErrNotExist.
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	dir = clean(dir)
	r := s.res
	lo, hi := dirRange(dir)
	members, err := r.client.Do(ctx, r.client.B().Zrange().Key(r.index).Min(lo).Max(hi).Bylex().Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("soul_redis storage: list %s: %w", dir, err)
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("%s: %w", dir, fs.ErrNotExist)
	}
	base := ""
	if dir != "" {
		base = dir + "/"
	}
	seen := make(map[string]struct{}, len(members))
	var keys []string
	add := func(k string) {
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			keys = append(keys, k)
		}
	}
	for _, m := range members {
		rel := strings.TrimPrefix(m, base)
		if !recursive {
			if i := strings.IndexByte(rel, '/'); i >= 0 {
				rel = rel[:i]
			}
			add(base + rel)
			continue
		}
		// Every directory on the way down, then the key itself.
		for i := 0; i < len(rel); i++ {
			if rel[i] == '/' {
				add(base + rel[:i])
			}
		}
		add(m)
	}
	sort.Strings(keys)
	return keys, nil
}

// Lock waits until it holds the lock called name or ctx ends. The lock is
// held, and renewed, until Unlock; ctx only bounds the wait.
func (s *Storage) Lock(ctx context.Context, name string) error {
	unlock, err := s.acquire(ctx, name, false)
	if err != nil {
		return err
	}
	return s.keep(name, unlock)
}

// TryLock takes the lock called name if it is free, without waiting.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	unlock, err := s.acquire(ctx, name, true)
	if errors.Is(err, rueidislock.ErrNotLocked) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, s.keep(name, unlock)
}

// acquire takes the lock under a context of its own: the caller's ctx may
// end as soon as Lock returns, and the lock must outlive it. A watcher
// cancels the wait when ctx ends first; the state word decides which of
// the two won, so a lock is never handed out already cancelled.
func (s *Storage) acquire(ctx context.Context, name string, try bool) (context.CancelFunc, error) {
	hold, stop := context.WithCancel(context.WithoutCancel(ctx))
	const (
		waiting int32 = iota
		abandoned
		taken
	)
	var state atomic.Int32
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			if state.CompareAndSwap(waiting, abandoned) {
				stop()
			}
		case <-done:
		}
	}()
	var (
		unlock context.CancelFunc
		err    error
	)
	if try {
		_, unlock, err = s.res.locker.TryWithContext(hold, name)
	} else {
		_, unlock, err = s.res.locker.WithContext(hold, name)
	}
	close(done)
	if err == nil && !state.CompareAndSwap(waiting, taken) {
		unlock()
		err = ctx.Err()
	}
	if err != nil {
		stop()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, rueidislock.ErrNotLocked) {
			return nil, err
		}
		return nil, fmt.Errorf("soul_redis storage: lock %s: %w", name, err)
	}
	return func() { unlock(); stop() }, nil
}

func (s *Storage) keep(name string, unlock context.CancelFunc) error {
	r := s.res
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, held := r.locks[name]; held {
		// rueidislock does not hand one name out twice; a second holder
		// here would mean the bookkeeping is wrong, so release it.
		unlock()
		return fmt.Errorf("soul_redis storage: lock %s is already held by this process", name)
	}
	r.locks[name] = unlock
	return nil
}

// Unlock releases the lock called name.
func (s *Storage) Unlock(_ context.Context, name string) error {
	r := s.res
	r.mu.Lock()
	unlock, ok := r.locks[name]
	delete(r.locks, name)
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("soul_redis storage: lock %s is not held", name)
	}
	unlock()
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner      = (*Storage)(nil)
	_ caddy.CleanerUpper     = (*Storage)(nil)
	_ caddy.StorageConverter = (*Storage)(nil)
	_ certmagic.Storage      = (*Storage)(nil)
	_ certmagic.TryLocker    = (*Storage)(nil)
)
