// Package ratelimitheaders writes the rate-limit state of an answer in the
// header fields clients read: RateLimit-Policy and RateLimit from the IETF
// httpapi draft (draft-ietf-httpapi-ratelimit-headers, structured fields)
// and the widespread X-RateLimit-Limit, X-RateLimit-Remaining and
// X-RateLimit-Reset. Every handler that limits requests uses it, so all
// limited answers speak the same way.
package ratelimitheaders

import (
	"net/http"
	"strconv"
	"time"

	"github.com/soulapp/soul/internal/limiter"
)

// Header field names.
const (
	Policy    = "RateLimit-Policy"
	RateLimit = "RateLimit"
	Limit     = "X-RateLimit-Limit"
	Remaining = "X-RateLimit-Remaining"
	Reset     = "X-RateLimit-Reset"
)

// Set writes the fields for decision d of the policy named policy, as of
// now. A policy name is a limiter rule name (letters, digits, '_', '-',
// '.'), so it needs no escaping inside a structured-field string.
//
// The reset ("t" and X-RateLimit-Reset) is when the whole quota is back,
// rounded up to the second: under a sliding window a client that waits that
// long has Limit requests again. A refused client is told the shorter wait
// for a single request by Retry-After.
func Set(h http.Header, policy string, d limiter.Decision, now time.Time) {
	window := seconds(d.Rule.Window)
	reset := seconds(d.ResetAfter)
	quoted := `"` + policy + `"`
	h.Set(Policy, quoted+";q="+strconv.Itoa(d.Limit)+";w="+strconv.FormatInt(window, 10))
	h.Set(RateLimit, quoted+";r="+strconv.Itoa(d.Remaining)+";t="+strconv.FormatInt(reset, 10))
	h.Set(Limit, strconv.Itoa(d.Limit))
	h.Set(Remaining, strconv.Itoa(d.Remaining))
	h.Set(Reset, strconv.FormatInt(unixCeil(now.Add(d.ResetAfter)), 10))
}

// Header returns the fields of Set in a new header, for an error answer
// (problem.Error.Header) that the error route renders.
func Header(policy string, d limiter.Decision, now time.Time) http.Header {
	h := make(http.Header, 5)
	Set(h, policy, d, now)
	return h
}

// seconds rounds d up to whole seconds, so a client never retries early.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// unixCeil is t in unix seconds, rounded up.
func unixCeil(t time.Time) int64 {
	u := t.Unix()
	if t.Nanosecond() > 0 {
		u++
	}
	return u
}
