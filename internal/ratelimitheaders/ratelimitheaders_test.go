package ratelimitheaders

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/limiter"
)

// Set writes what the fields' definitions say, checked against a plain
// construction of each value over many decisions, including windows and
// resets that are not whole seconds.
func TestSetWritesTheFields(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 250_000_000, time.UTC)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1000; i++ {
		d := limiter.Decision{
			Rule:       limiter.Rule{Name: "default", Limit: r.IntN(1000) + 1, Window: time.Duration(r.Int64N(int64(48 * time.Hour)))},
			Limit:      r.IntN(1000) + 1,
			Remaining:  r.IntN(1000),
			ResetAfter: time.Duration(r.Int64N(int64(48*time.Hour))) - time.Second,
		}
		policy := []string{"default", "otp_send_day", "x.y-z"}[i%3]
		h := http.Header{"Content-Type": {"application/json"}}
		Set(h, policy, d, now)
		ceil := func(x time.Duration) int64 {
			if x <= 0 {
				return 0
			}
			s := int64(x / time.Second)
			if x%time.Second != 0 {
				s++
			}
			return s
		}
		resetAt := now.Add(d.ResetAfter)
		resetUnix := resetAt.Unix()
		if resetAt.Nanosecond() != 0 {
			resetUnix++
		}
		want := http.Header{
			"Content-Type":          {"application/json"},
			"Ratelimit-Policy":      {fmt.Sprintf("%q;q=%d;w=%d", policy, d.Limit, ceil(d.Rule.Window))},
			"Ratelimit":             {fmt.Sprintf("%q;r=%d;t=%d", policy, d.Remaining, ceil(d.ResetAfter))},
			"X-Ratelimit-Limit":     {fmt.Sprint(d.Limit)},
			"X-Ratelimit-Remaining": {fmt.Sprint(d.Remaining)},
			"X-Ratelimit-Reset":     {fmt.Sprint(resetUnix)},
		}
		for k, v := range want {
			if got := h.Values(k); fmt.Sprint(got) != fmt.Sprint(v) {
				t.Fatalf("%+v: %s = %q, want %q", d, k, got, v)
			}
		}
		if len(h) != len(want) {
			t.Fatalf("%d fields, want %d: %v", len(h), len(want), h)
		}
		// Adding to one field must not touch another's shared array.
		h.Add(Limit, "extra")
		if h.Get(Remaining) != fmt.Sprint(d.Remaining) {
			t.Fatalf("adding to %s changed %s", Limit, Remaining)
		}
	}
}

func BenchmarkSet(b *testing.B) {
	d := limiter.Decision{Rule: limiter.Rule{Name: "default", Limit: 100, Window: time.Minute}, Limit: 100, Remaining: 42, ResetAfter: 37 * time.Second}
	h := make(http.Header, 8)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		Set(h, "default", d, now)
	}
}
