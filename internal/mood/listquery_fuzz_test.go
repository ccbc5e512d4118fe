package mood_test

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/internal/problem"
)

// FuzzParseListQuery: any query string of GET /api/moods is either a 422
// naming only the list's own parameters, or a query the store can run as
// one bounded range: a limit of 1..MaxLimit, a cursor when `before` was
// given, UTC bounds with from before to.
func FuzzParseListQuery(f *testing.F) {
	cursor := mood.Cursor{RecordedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), ID: uuid.New()}.String()
	for _, s := range []string{
		"", "limit=20", "limit=0", "limit=101", "limit=-1", "limit=1e2", "limit=99999999999999999999",
		"before=" + cursor, "before=x", "before=" + cursor + "&limit=5",
		"from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
		"from=2026-01-01T00:00:00%2B14:00", "to=not-a-date", "limit=1&limit=2", "%zz", ";", "from=&to=",
	} {
		f.Add(s)
	}
	names := map[string]bool{"limit": true, "before": true, "from": true, "to": true}
	f.Fuzz(func(t *testing.T, raw string) {
		// As the server reads it: URL.Query drops what it cannot decode.
		v := (&url.URL{RawQuery: raw}).Query()
		q, err := mood.ParseListQuery(v)
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Status != 422 || pe.Code != "validation_failed" || len(pe.Fields) == 0 {
				t.Fatalf("query %q: error %v is not a 422 validation problem", raw, err)
			}
			for _, fe := range pe.Fields {
				if !names[fe.Field] {
					t.Fatalf("query %q: problem names field %q", raw, fe.Field)
				}
			}
			return
		}
		if q.Limit < 1 || q.Limit > mood.MaxLimit || (v.Get("limit") == "" && q.Limit != mood.DefaultLimit) {
			t.Fatalf("query %q: limit %d", raw, q.Limit)
		}
		if (q.Before != nil) != (v.Get("before") != "") {
			t.Fatalf("query %q: cursor %v for before=%q", raw, q.Before, v.Get("before"))
		}
		for _, b := range []*time.Time{q.From, q.To} {
			if b != nil && b.Location() != time.UTC {
				t.Fatalf("query %q: bound %v is not UTC", raw, b)
			}
		}
		if q.From != nil && q.To != nil && !q.From.Before(*q.To) {
			t.Fatalf("query %q: from %v is not before to %v", raw, q.From, q.To)
		}
	})
}
