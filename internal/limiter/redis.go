package limiter

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// slidingLogScript checks every rule of one call atomically.
//
// KEYS[i] is the sorted set of rule i: one member per admitted hit, scored
// by its server time in microseconds.
// ARGV[1] is "1" to count a hit, "0" to only look, "2" to count and end
// the answer with the members added (the instant, then per rule the
// sequence number, -1 when nothing was added) so they can be taken back
// (see clusterCheck); then, per rule,
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
var slidingLogScript = rueidis.NewLuaScript(slidingLogSource)

// slidingLogSHA is the script's SHA-1, for EVALSHA sent in a pipeline of
// several commands on a cluster.
var slidingLogSHA = func() string {
	sum := sha1.Sum([]byte(slidingLogSource))
	return hex.EncodeToString(sum[:])
}()

const slidingLogSource = `
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
local seqs = {}
if all == 1 and ARGV[1] ~= '0' then
  local stamp = t[1] .. '.' .. t[2] .. '-'
  for i = 1, n do
    local seq = 0
    while redis.call('ZADD', KEYS[i], 'NX', now, stamp .. seq) == 0 do seq = seq + 1 end
    seqs[i] = seq
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
if ARGV[1] == '2' then
  out[#out + 1] = now
  for i = 1, n do out[#out + 1] = seqs[i] or -1 end
end
return out
`

// scriptArgs are the KEYS and ARGV of one script call over ps.
func scriptArgs(ps []prepared, count bool, marker string) (keys, args []string) {
	mode := "0"
	if count {
		mode = "1"
	}
	return scriptArgsMode(ps, mode, marker)
}

func scriptArgsMode(ps []prepared, mode, marker string) (keys, args []string) {
	keys = make([]string, len(ps), len(ps)+1)
	args = make([]string, 1, 1+2*len(ps))
	args[0] = mode
	for i, p := range ps {
		keys[i] = p.key
		args = append(args,
			strconv.Itoa(p.rule.Limit),
			strconv.FormatInt(p.rule.Window.Microseconds(), 10))
	}
	if marker != "" {
		keys = append(keys, marker)
	}
	return keys, args
}

// parse reads one script answer over ps into ds (same order) and returns
// whether every rule had room, and the marker's value when withMarker.
func parse(vals []int64, ps []prepared, ds []Decision, withMarker bool) (bool, Marker, error) {
	want := 1 + 4*len(ps)
	if withMarker {
		want++
	}
	if len(vals) == want+1+len(ps) && !withMarker {
		// Mode "2": the members added follow; see added.
		vals = vals[:want]
	}
	if len(vals) != want {
		return false, MarkerUnknown, fmt.Errorf("limiter: script answered %d values for %d rules", len(vals), len(ps))
	}
	for i, p := range ps {
		v := vals[1+4*i:]
		ds[i] = decision(p.rule, v[0] == 1, int(v[1]),
			time.Duration(v[2])*time.Microsecond,
			time.Duration(v[3])*time.Microsecond,
			StorageRedis)
	}
	m := MarkerUnknown
	if withMarker {
		m = markerOf(vals[want-1])
	}
	return vals[0] == 1, m, nil
}

func (l *Limiter) redisCheck(ctx context.Context, ps []prepared, count bool, marker string) (Result, Marker, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	if l.cluster {
		return l.clusterCheck(ctx, ps, count, marker)
	}
	// A single Redis takes every key in one script, whatever its slot: one
	// round trip, one atomic decision over all rules.
	keys, args := scriptArgs(ps, count, marker)
	vals, err := slidingLogScript.Exec(ctx, l.client, keys, args).AsIntSlice()
	if err != nil {
		return Result{}, MarkerUnknown, err
	}
	ds := make([]Decision, len(ps))
	_, m, err := parse(vals, ps, ds, marker != "")
	if err != nil {
		return Result{}, MarkerUnknown, err
	}
	return result(ds, StorageRedis), m, nil
}

// clusterCheck is redisCheck on a Redis Cluster, where one script only
// takes keys of one hash slot. The checks are split into groups by their
// subject's hash tag (see storageKey), in the order the caller lists them;
// each group is one atomic script call. Counting, the groups run one after
// another, each counting its hit when all its rules have room; the first
// that refuses stops the count, the groups after it are only looked at,
// and the hits the groups before it counted are taken back (ZREM of the
// exact members), so a refused request costs no rule anything, as on one
// Redis. Every rule still admits at most its limit: each rule's decision is
// atomic in its own slot. What a cluster adds: between a count and its
// take-back (one round trip) the hit holds a unit, so a concurrent request
// may be refused that one Redis would have admitted; and a take-back that
// fails (the node went away) leaves the unit spent until the window ends.
// The marker, in a slot of its own, is read with a GET sent in the same
// pipeline as the first group's script: a marker is a cache of the
// database, so it needs no atomicity with the limit.
func (l *Limiter) clusterCheck(ctx context.Context, ps []prepared, count bool, marker string) (Result, Marker, error) {
	groups := groupBySlot(ps)
	ds := make([]Decision, len(ps))
	m := MarkerUnknown
	looking := !count
	// Mode "2" reports the members added, to take them back; with one
	// group there is nothing to take back.
	countMode := "1"
	if len(groups) > 1 {
		countMode = "2"
	}
	var taken []refund
	for gi := 0; gi < len(groups); {
		// Groups that are only looked at go together in one pipeline.
		n := 1
		mode := countMode
		if looking {
			n = len(groups) - gi
			mode = "0"
		}
		batch := groups[gi : gi+n]
		cmds := make(rueidis.Commands, 0, n+1)
		for _, g := range batch {
			keys, args := scriptArgsMode(g.ps, mode, "")
			cmds = append(cmds, l.client.B().Evalsha().Sha1(slidingLogSHA).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
		}
		withMarker := gi == 0 && marker != ""
		if withMarker {
			cmds = append(cmds, l.client.B().Get().Key(marker).Build())
		}
		res := l.client.DoMulti(ctx, cmds...)
		for bi, g := range batch {
			r := res[bi]
			if e, ok := rueidis.IsRedisErr(r.Error()); ok && e.IsNoScript() {
				// A node that never ran the script (a replica promoted
				// since, a restart): Exec sends EVAL, which loads it.
				keys, args := scriptArgsMode(g.ps, mode, "")
				r = slidingLogScript.Exec(ctx, l.client, keys, args)
			}
			vals, err := r.AsIntSlice()
			if err != nil {
				l.takeBack(ctx, taken)
				return Result{}, MarkerUnknown, err
			}
			gds := make([]Decision, len(g.ps))
			ok, _, err := parse(vals, g.ps, gds, false)
			if err != nil {
				l.takeBack(ctx, taken)
				return Result{}, MarkerUnknown, err
			}
			for i, d := range gds {
				ds[g.idx[i]] = d
			}
			if mode == "2" && ok {
				taken = append(taken, added(vals, g)...)
			}
			if !ok {
				looking = true
			}
		}
		if withMarker {
			v, err := res[len(res)-1].AsInt64()
			switch {
			case rueidis.IsRedisNil(err):
				m = MarkerAbsent
			case err == nil:
				m = markerOf(v)
			default:
				l.takeBack(ctx, taken)
				return Result{}, MarkerUnknown, fmt.Errorf("limiter: redis get marker: %w", err)
			}
		}
		gi += n
	}
	out := result(ds, StorageRedis)
	if !out.Allowed && len(taken) > 0 {
		l.takeBack(ctx, taken)
		for _, t := range taken {
			d := &ds[t.idx]
			if d.Remaining < d.Limit {
				d.Remaining++
			}
		}
	}
	return out, m, nil
}

// refund is one hit a group counted: its key, its sorted-set member and
// its place in the call.
type refund struct {
	key, member string
	idx         int
}

// added reads the members a mode "2" answer reports for group g.
func added(vals []int64, g slotGroup) []refund {
	tail := vals[len(vals)-1-len(g.ps):]
	now := tail[0]
	out := make([]refund, 0, len(g.ps))
	for i, p := range g.ps {
		seq := tail[1+i]
		if seq < 0 {
			continue
		}
		out = append(out, refund{
			key:    p.key,
			member: strconv.FormatInt(now/1_000_000, 10) + "." + strconv.FormatInt(now%1_000_000, 10) + "-" + strconv.FormatInt(seq, 10),
			idx:    g.idx[i],
		})
	}
	return out
}

// takeBack removes the hits of rs, one ZREM each, sent together. It is
// best effort: a hit it cannot remove stays counted until its window ends.
func (l *Limiter) takeBack(ctx context.Context, rs []refund) {
	if len(rs) == 0 {
		return
	}
	// A time of its own: the check's may be what ran out, and a hit not
	// taken back stays spent until its window ends.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	cmds := make(rueidis.Commands, len(rs))
	for i, r := range rs {
		cmds[i] = l.client.B().Zrem().Key(r.key).Member(r.member).Build()
	}
	l.client.DoMulti(ctx, cmds...)
}

// slotGroup is the checks of one call that share a hash tag, with their
// places in the call.
type slotGroup struct {
	tag string
	ps  []prepared
	idx []int
}

// groupBySlot splits ps by hash tag, groups in order of first appearance.
func groupBySlot(ps []prepared) []slotGroup {
	var gs []slotGroup
next:
	for i, p := range ps {
		tag := hashTag(p.key)
		for j := range gs {
			if gs[j].tag == tag {
				gs[j].ps = append(gs[j].ps, p)
				gs[j].idx = append(gs[j].idx, i)
				continue next
			}
		}
		gs = append(gs, slotGroup{tag: tag, ps: []prepared{p}, idx: []int{i}})
	}
	return gs
}

// hashTag is what Redis Cluster hashes of key: the text between the first
// '{' and the next '}', or the whole key when there is none.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
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
