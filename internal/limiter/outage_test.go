package limiter

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/testservices"
)

// The local store never holds more than MaxLocalKeys keys, and a flood of
// new subjects evicts its own short-lived entries before a subject whose
// hits are remembered longer.
func TestLocalStoreEvicts(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	const maxKeys = 10 * memShards
	l := openLimiterClock(t, Options{MaxLocalKeys: maxKeys}, clock.Now)
	day := Rule{"otp_send_day", 10, 24 * time.Hour}
	flood := Rule{"default", 100, time.Minute}

	for i := 0; i < 3; i++ {
		allow(t, l, day, "+447400123456", StorageLocal)
	}
	for i := 0; i < 20_000; i++ {
		if i%1000 == 0 {
			clock.Add(time.Millisecond)
		}
		allow(t, l, flood, "ip:198.18."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256), StorageLocal)
		if n := l.LocalKeys(); n > maxKeys {
			t.Fatalf("after %d subjects the store holds %d keys, over its bound of %d", i+1, n, maxKeys)
		}
	}
	if n := l.mem.size(); n != l.LocalKeys() {
		t.Fatalf("LocalKeys() %d, but the shards hold %d", l.LocalKeys(), n)
	}
	if ev := l.LocalEvictions(); ev < 20_000+1-maxKeys {
		t.Fatalf("%d evictions, want at least %d", ev, 20_000+1-maxKeys)
	}
	if d := peek(t, l, day, "+447400123456"); d.Remaining != 7 {
		t.Fatalf("the day-long entry was evicted by the flood: %+v", d)
	}
	// The sweep and Forget keep the count true.
	clock.Add(time.Minute)
	l.mem.sweep()
	if n, want := l.LocalKeys(), 1; n != want || l.mem.size() != want {
		t.Fatalf("after the sweep LocalKeys() %d, shards %d, want %d", n, l.mem.size(), want)
	}
	if err := l.Forget(context.Background(), "+447400123456", day); err != nil {
		t.Fatal(err)
	}
	if n := l.LocalKeys(); n != 0 {
		t.Fatalf("LocalKeys() %d after Forget, want 0", n)
	}
}

// Reset and Forget never fail for an outage: with Redis frozen or gone
// they clear the local store, answer nil within about one call timeout,
// and the Redis keys are deleted once Redis answers, before any hit is
// counted on them there.
func TestDeletesWaitForRedis(t *testing.T) {
	ctx := context.Background()
	attempts := Rule{"otp_attempts", 5, 5 * time.Minute}
	perUser := Rule{"default", 100, time.Minute}
	srv := startPrivateRedis(t)
	c := testservices.RedisClient(t, srv.url())
	prefix := testPrefix(t)
	// Dial and load the script with a patient limiter first, so the short
	// timeout below is not spent on a cold connection.
	allow(t, openLimiter(t, Options{Client: c, Prefix: testPrefix(t), Timeout: 10 * time.Second}), perUser, "warm", StorageRedis)
	l := openLimiter(t, Options{Client: c, Prefix: prefix, Timeout: 250 * time.Millisecond, Backoff: 300 * time.Millisecond})

	for i := 0; i < 3; i++ {
		allow(t, l, attempts, "+447400123456", StorageRedis)
	}
	allow(t, l, perUser, "user:1", StorageRedis)
	allow(t, l, perUser, "user:2", StorageRedis)
	exists := func(key string) bool {
		t.Helper()
		n, err := c.Do(ctx, c.B().Exists().Key(key).Build()).AsInt64()
		if err != nil {
			t.Fatalf("EXISTS: %v", err)
		}
		return n == 1
	}
	attemptsKey, userKey := l.storageKey(attempts.Name, "+447400123456"), l.storageKey(perUser.Name, "user:1")
	if !exists(attemptsKey) || !exists(userKey) {
		t.Fatal("keys missing before the outage")
	}

	signal(t, srv, syscall.SIGSTOP)
	start := time.Now()
	if err := l.Reset(ctx, attempts, "+447400123456"); err != nil {
		t.Fatalf("Reset with Redis frozen: %v", err)
	}
	if err := l.Forget(ctx, "user:1"); err != nil {
		t.Fatalf("Forget with Redis frozen: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Reset and Forget took %s with Redis frozen", took)
	}
	if l.Storage() != StorageLocal {
		t.Fatalf("Storage() %s after a failed delete", l.Storage())
	}
	// Answered from memory meanwhile: the reset counter starts afresh.
	if d := allow(t, l, attempts, "+447400123456", StorageLocal); d.Remaining != attempts.Limit-1 {
		t.Fatalf("after Reset, in memory: %+v", d)
	}
	if n := l.PendingDeletes(); n < 2 {
		t.Fatalf("PendingDeletes() %d, want the reset key and user:1's", n)
	}
	signal(t, srv, syscall.SIGCONT)

	// The first call on Redis deletes the waiting key of its own subject
	// before counting: the hits before the outage are gone.
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := l.Allow(ctx, attempts, "+447400123456")
		if err != nil {
			t.Fatal(err)
		}
		if d.Storage == StorageRedis {
			if d.Remaining != attempts.Limit-1 {
				t.Fatalf("first hit on Redis after the outage: %+v, want the reset counter", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still on memory 5 s after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The rest rode along with that call.
	if n := l.PendingDeletes(); n != 0 {
		t.Fatalf("PendingDeletes() %d once Redis is back, want 0", n)
	}
	if exists(userKey) {
		t.Fatal("the forgotten user's key is still in Redis after it came back")
	}
	if !exists(l.storageKey(perUser.Name, "user:2")) {
		t.Fatal("another user's key was deleted")
	}
	if l.DroppedDeletes() != 0 {
		t.Fatalf("DroppedDeletes() %d", l.DroppedDeletes())
	}
}

// The waiting deletions are bounded: past MaxPendingDeletes they are
// dropped and counted, never grown.
func TestPendingDeletesBounded(t *testing.T) {
	srv := startPrivateRedis(t)
	c := testservices.RedisClient(t, srv.url())
	srv.stop()
	l := openLimiter(t, Options{Client: c, Prefix: testPrefix(t), Timeout: 50 * time.Millisecond, MaxPendingDeletes: 10})
	rule := Rule{"default", 100, time.Minute}
	for i := 0; i < 25; i++ {
		if err := l.Reset(context.Background(), rule, "user:"+strconv.Itoa(i)); err != nil {
			t.Fatalf("Reset %d with Redis down: %v", i, err)
		}
	}
	if n, d := l.PendingDeletes(), l.DroppedDeletes(); n != 10 || d != 15 {
		t.Fatalf("PendingDeletes() %d, DroppedDeletes() %d; want 10 and 15", n, d)
	}
}
