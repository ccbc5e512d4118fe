package limiter

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// slidingLogScript checks every rule of one call atomically.
//
// KEYS[i] is the sorted set of rule i: one member per admitted hit, scored
// by its server time in microseconds.
// ARGV[1] is "1" to count a hit, "0" to only look; then, per rule,
// ARGV[2i] is the limit and ARGV[2i+1] the window in microseconds.
// It returns {allowed, then per rule: ok, count, retry_us, reset_us}.
// A key after the rules' (one more KEYS than rules) is a marker (see
// Marker): its value, 0 when absent, ends the answer, so a request learns
// its session's state in the round trip of its limit.
//
// TIME is read from the server so every replica uses one clock. Redis 7
// replicates scripts by their effects, which is what makes TIME legal before
// a write; redis.replicate_commands turns that on for Redis 3.2 to 4.
//
// Members are made unique with a sequence number because ZADD with an
// existing member would move it instead of logging a second hit.
var slidingLogScript = rueidis.NewLuaScript(`
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = (#ARGV - 1) / 2
local counts, ok = {}, {}
local all = 1
for i = 1, n do
  local limit = tonumber(ARGV[2 * i])
  local win = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - win)
  counts[i] = redis.call('ZCARD', KEYS[i])
  if counts[i] < limit then ok[i] = 1 else ok[i] = 0; all = 0 end
end
if all == 1 and ARGV[1] == '1' then
  local stamp = t[1] .. '.' .. t[2] .. '-'
  for i = 1, n do
    local seq = 0
    while redis.call('ZADD', KEYS[i], 'NX', now, stamp .. seq) == 0 do seq = seq + 1 end
    redis.call('PEXPIRE', KEYS[i], math.ceil(tonumber(ARGV[2 * i + 1]) / 1000))
    counts[i] = counts[i] + 1
  end
end
local out = {all}
for i = 1, n do
  local limit = tonumber(ARGV[2 * i])
  local win = tonumber(ARGV[2 * i + 1])
  local retry, reset = 0, 0
  if ok[i] == 0 then
    local idx = counts[i] - limit
    local r = redis.call('ZRANGE', KEYS[i], idx, idx, 'WITHSCORES')
    retry = tonumber(r[2]) + win - now
  end
  if counts[i] > 0 then
    local r = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
    reset = tonumber(r[2]) + win - now
  end
  out[#out + 1] = ok[i]
  out[#out + 1] = counts[i]
  out[#out + 1] = retry
  out[#out + 1] = reset
end
if #KEYS > n then
  out[#out + 1] = tonumber(redis.call('GET', KEYS[n + 1]) or '0') or 0
end
return out
`)

func (l *Limiter) redisCheck(ctx context.Context, ps []prepared, count bool, marker string) (Result, Marker, error) {
	keys := make([]string, len(ps), len(ps)+1)
	args := make([]string, 1, 1+2*len(ps))
	args[0] = "0"
	if count {
		args[0] = "1"
	}
	for i, p := range ps {
		keys[i] = p.key
		args = append(args,
			strconv.Itoa(p.rule.Limit),
			strconv.FormatInt(p.rule.Window.Microseconds(), 10))
	}
	want := 1 + 4*len(ps)
	if marker != "" {
		keys = append(keys, marker)
		want++
	}

	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	vals, err := slidingLogScript.Exec(ctx, l.client, keys, args).AsIntSlice()
	if err != nil {
		return Result{}, MarkerUnknown, err
	}
	if len(vals) != want {
		return Result{}, MarkerUnknown, fmt.Errorf("limiter: script answered %d values for %d rules", len(vals), len(ps))
	}

	ds := make([]Decision, len(ps))
	for i, p := range ps {
		v := vals[1+4*i:]
		ds[i] = decision(p.rule, v[0] == 1, int(v[1]),
			time.Duration(v[2])*time.Microsecond,
			time.Duration(v[3])*time.Microsecond,
			StorageRedis)
	}
	m := MarkerUnknown
	if marker != "" {
		m = markerOf(vals[want-1])
	}
	return result(ds, StorageRedis), m, nil
}

// redisDelete deletes keys with one DEL each, sent together: a single
// multi-key DEL would be refused by a cluster when the keys hash to
// different slots.
func (l *Limiter) redisDelete(ctx context.Context, keys []string) error {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = l.client.B().Del().Key(k).Build()
	}
	for _, r := range l.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return err
		}
	}
	return nil
}
