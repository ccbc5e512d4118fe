package token

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Only the exact string that verified is remembered: an altered token
// misses the cache, fails the full check and is not added.
func TestCacheHoldsOnlyVerifiedTokens(t *testing.T) {
	iss, _ := newTestIssuer(t, Options{})
	tok, want, err := iss.IssueSession("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		got, err := iss.Verify(tok)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("verify %d: %+v, %v; want %+v", i, got, err, want)
		}
	}
	if n := iss.CachedTokens(); n != 1 {
		t.Fatalf("%d cached tokens after verifying one twice", n)
	}
	flip := "A"
	if strings.HasSuffix(tok, "A") {
		flip = "B"
	}
	altered := tok[:len(tok)-1] + flip
	for _, bad := range []string{altered, tok + "A", tok[:len(tok)-1], "Bearer " + tok} {
		if _, err := iss.Verify(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("verify %q...: %v, want ErrInvalid", bad[:10], err)
		}
	}
	if n := iss.CachedTokens(); n != 1 {
		t.Fatalf("%d cached tokens after refusals", n)
	}
}

// At every moment around a token's iat and exp, the cached answer is the
// full check's answer: a token cached while valid is refused, with the
// full check's reason, once its time is over.
func TestCachedTokenKeepsTheTimeRules(t *testing.T) {
	iss, clk := newTestIssuer(t, Options{AccessTTL: time.Minute})
	tok, c, err := iss.Issue("user-1")
	if err != nil {
		t.Fatal(err)
	}
	var moments []time.Time
	for _, edge := range []time.Time{c.IssuedAt.Add(-Leeway), c.ExpiresAt.Add(Leeway)} {
		for _, d := range []time.Duration{-time.Second, -time.Nanosecond, 0, time.Nanosecond, time.Second} {
			moments = append(moments, edge.Add(d))
		}
	}
	for _, at := range moments {
		// Cache the token at issue time, then ask at the moment.
		clk.now = c.IssuedAt
		if _, err := iss.Verify(tok); err != nil {
			t.Fatal(err)
		}
		clk.now = at
		_, cachedErr := iss.Verify(tok)
		_, fullErr := iss.verify(tok)
		if fmt.Sprint(cachedErr) != fmt.Sprint(fullErr) {
			t.Errorf("at %v: cached %v, full check %v", at.Sub(c.IssuedAt), cachedErr, fullErr)
		}
	}
	clk.now = c.ExpiresAt.Add(Leeway)
	if _, err := iss.Verify(tok); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a cached token past its expiry: %v", err)
	}
}

// The cache never holds more than its bound: expired entries go first,
// and a cache full of live tokens is emptied.
func TestCacheBound(t *testing.T) {
	c := newVerifiedTokens(3)
	live := Claims{IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	dead := Claims{IssuedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(-time.Minute)}
	c.put("dead-1", dead, t0)
	c.put("dead-2", dead, t0)
	c.put("live-1", live, t0)
	c.put("live-2", live, t0)
	if len(c.claims) != 2 || c.cleared.Load() != 0 {
		t.Fatalf("after a sweep: %d entries, %d clears; want the 2 live ones, no clear", len(c.claims), c.cleared.Load())
	}
	for i := 0; i < 10; i++ {
		c.put(fmt.Sprintf("more-%d", i), live, t0)
		if len(c.claims) > 3 || int(c.size.Load()) != len(c.claims) {
			t.Fatalf("%d entries (size %d), bound 3", len(c.claims), c.size.Load())
		}
	}
	if c.cleared.Load() == 0 {
		t.Fatal("a cache full of live tokens was never emptied")
	}
	if _, ok := c.get("more-9", t0); !ok {
		t.Fatal("the token just added is not found")
	}
}
