package mood

import (
	"net/url"
	"strconv"
	"time"

	"github.com/soulapp/soul/internal/problem"
)

// ParseListQuery reads GET /api/moods's query: limit (1..100, default 20),
// before (a cursor from a Link header), from and to (RFC 3339 bounds on
// recorded_at, from inclusive, to exclusive). Its errors are 422 problems.
func ParseListQuery(v url.Values) (ListQuery, error) {
	q := ListQuery{Limit: DefaultLimit}
	var fields []problem.FieldError
	bad := func(field, msg string) { fields = append(fields, problem.FieldError{Field: field, Message: msg}) }
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			bad("limit", "must be an integer from 1 to "+strconv.Itoa(MaxLimit))
		} else {
			q.Limit = n
		}
	}
	if s := v.Get("before"); s != "" {
		c, err := ParseCursor(s)
		if err != nil {
			bad("before", "must be a cursor from a Link header of this API")
		} else {
			q.Before = &c
		}
	}
	for _, b := range []struct {
		name string
		dst  **time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		s := v.Get(b.name)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			bad(b.name, "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z")
			continue
		}
		t = t.UTC()
		*b.dst = &t
	}
	if q.From != nil && q.To != nil && !q.From.Before(*q.To) {
		bad("to", "must be after from")
	}
	if len(fields) > 0 {
		return q, problem.Validation(fields...)
	}
	return q, nil
}
