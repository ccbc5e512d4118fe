package token

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxCachedTokens bounds the verified-token cache of one Issuer. An entry
// is the token and its claims, about half a kilobyte, so the cache holds at
// most a few megabytes; beyond that many signed-in phones per replica a
// token may be verified again, which costs time, never correctness.
const MaxCachedTokens = 10_000

// verifiedTokens remembers access tokens that passed the full check, so a
// phone presenting the same token on every request costs a map lookup, not
// an HMAC and a JSON decode. Only the exact string that verified is ever
// found: a forged or altered token is a different key. What can change
// while a token is cached is time, so a hit rechecks exp and iat exactly
// as the parser does; a miss, or a token past its expiry, takes the full
// check (and gets its reason from it). Revocation is not the token's
// business: sessions are checked on every request elsewhere. An Issuer
// owns one cache, so a new key (a reload) starts empty.
type verifiedTokens struct {
	mu      sync.RWMutex
	claims  map[string]Claims
	max     int
	size    atomic.Int64
	cleared atomic.Uint64
}

func newVerifiedTokens(max int) *verifiedTokens {
	return &verifiedTokens{claims: make(map[string]Claims), max: max}
}

// get returns the claims token verified with, if it is cached and still
// within its time bounds at now.
func (c *verifiedTokens) get(token string, now time.Time) (Claims, bool) {
	c.mu.RLock()
	cl, ok := c.claims[token]
	c.mu.RUnlock()
	if !ok || !current(cl, now) {
		return Claims{}, false
	}
	return cl, true
}

// put caches token's claims. At the bound it first drops the entries that
// have expired and, when that frees nothing, all of them: an O(n) sweep
// at most once per max insertions keeps every lookup a plain map read.
func (c *verifiedTokens) put(token string, cl Claims, now time.Time) {
	// The token may be a slice of a larger request buffer.
	token = strings.Clone(token)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.claims[token]; !ok && len(c.claims) >= c.max {
		for t, old := range c.claims {
			if !current(old, now) {
				delete(c.claims, t)
			}
		}
		if len(c.claims) >= c.max {
			clear(c.claims)
			c.cleared.Add(1)
		}
	}
	c.claims[token] = cl
	c.size.Store(int64(len(c.claims)))
}

// current is the parser's time check (WithLeeway, WithIssuedAt,
// WithExpirationRequired): now before exp+Leeway and not before
// iat-Leeway.
func current(cl Claims, now time.Time) bool {
	return now.Before(cl.ExpiresAt.Add(Leeway)) && !now.Before(cl.IssuedAt.Add(-Leeway))
}

// CachedTokens is how many verified tokens the Issuer holds in memory
// (soul_access_token_cache_entries).
func (iss *Issuer) CachedTokens() int { return int(iss.cache.size.Load()) }

// CacheClears counts the times the cache was full of live tokens and was
// emptied (soul_access_token_cache_clears_total).
func (iss *Issuer) CacheClears() uint64 { return iss.cache.cleared.Load() }
