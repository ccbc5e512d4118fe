// Package ratelimitheaders writes the rate-limit state of an answer in the
// header fields clients read: RateLimit-Policy and RateLimit from the IETF
// httpapi draft (draft-ietf-httpapi-ratelimit-headers, structured fields)
// and the widespread X-RateLimit-Limit, X-RateLimit-Remaining and
// X-RateLimit-Reset. Every handler that limits requests uses it, so all
// limited answers speak the same way.
package ratelimitheaders

import (
	"net/http"
	"net/textproto"
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
	// Sent on every limited answer: the five values are written into one
	// buffer and one string, and share one backing array, instead of a
	// dozen allocations.
	limit, remaining := int64(d.Limit), int64(d.Remaining)
	var buf [192]byte // on the stack; a longer policy name grows it
	b := buf[:0]
	var end [5]int
	b = strconv.AppendInt(append(append(append(b, '"'), policy...), `";q=`...), limit, 10)
	b = strconv.AppendInt(append(b, ";w="...), seconds(d.Rule.Window), 10)
	end[0] = len(b)
	b = strconv.AppendInt(append(append(append(b, '"'), policy...), `";r=`...), remaining, 10)
	b = strconv.AppendInt(append(b, ";t="...), seconds(d.ResetAfter), 10)
	end[1] = len(b)
	b = strconv.AppendInt(b, limit, 10)
	end[2] = len(b)
	b = strconv.AppendInt(b, remaining, 10)
	end[3] = len(b)
	b = strconv.AppendInt(b, unixCeil(now.Add(d.ResetAfter)), 10)
	end[4] = len(b)
	all := string(b)
	vals := make([]string, 5)
	start := 0
	for i, e := range end {
		vals[i] = all[start:e]
		start = e
	}
	for i, name := range canonicalNames {
		h[name] = vals[i : i+1 : i+1]
	}
}

// canonicalNames are the fields in Set's order, in the form http.Header.Set
// would store them ("Ratelimit-Policy"), so Get and the wire see the same.
var canonicalNames = [5]string{
	textproto.CanonicalMIMEHeaderKey(Policy),
	textproto.CanonicalMIMEHeaderKey(RateLimit),
	textproto.CanonicalMIMEHeaderKey(Limit),
	textproto.CanonicalMIMEHeaderKey(Remaining),
	textproto.CanonicalMIMEHeaderKey(Reset),
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
