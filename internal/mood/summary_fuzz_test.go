package mood

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/problem"
)

// FuzzParseSummaryQuery: any query string of GET /api/moods/summary is
// either a 422 naming only the summary's own parameters, or a query the
// store can run as one bounded range: UTC bounds with from before to, no
// further apart than the bucket allows, a loaded zone, and spans (see
// segments) that cover the range in order with a bounded number of
// buckets, each span inside one local bucket at both its ends.
func FuzzParseSummaryQuery(f *testing.F) {
	for _, s := range []string{
		"", "from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z",
		"from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z&bucket=week&tz=Europe/London",
		"from=2023-01-01T00:00:00Z&to=2026-01-03T00:00:00Z&bucket=day&tz=Pacific/Apia",
		"from=2016-01-01T00:00:00Z&to=2026-01-08T00:00:00Z&bucket=month&tz=Australia/Lord_Howe",
		"from=2026-03-29T00:30:00%2B01:00&to=2026-03-29T02:00:00%2B01:00&tz=Europe/London",
		"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from=x&to=y", "from=2026-01-01",
		"tz=Local", "tz=../etc/passwd", "tz=right/UTC", "tz=Etc/GMT%2B5", "tz=%00", "bucket=year",
		"from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z&tz=America/New_York",
		"from=9999-12-30T00:00:00Z&to=9999-12-31T23:59:59.999999999Z&tz=Pacific/Kiritimati",
		"bucket=day&bucket=week", "%zz", ";",
	} {
		f.Add(s)
	}
	names := map[string]bool{"from": true, "to": true, "bucket": true, "tz": true}
	f.Fuzz(func(t *testing.T, raw string) {
		// As the server reads it: URL.Query drops what it cannot decode.
		v := (&url.URL{RawQuery: raw}).Query()
		q, err := ParseSummaryQuery(v)
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
		if q.From.Location() != time.UTC || q.To.Location() != time.UTC || !q.From.Before(q.To) || q.To.Sub(q.From) > MaxSummarySpan[q.Bucket] {
			t.Fatalf("query %q: range %v..%v", raw, q.From, q.To)
		}
		if q.Location == nil || q.Zone == "" || q.Zone == "Local" {
			t.Fatalf("query %q: zone %q", raw, q.Zone)
		}
		bounds, labels, dates := segments(q.From, q.To, q.Location, q.Bucket)
		if len(bounds) != len(labels)+1 || !bounds[0].Equal(q.From) || !bounds[len(bounds)-1].Equal(q.To) {
			t.Fatalf("query %q: %d bounds for %d spans", raw, len(bounds), len(labels))
		}
		if limit := map[Bucket]int{BucketDay: 1100, BucketWeek: 525, BucketMonth: 122}[q.Bucket]; len(dates) > limit {
			t.Fatalf("query %q: %d buckets", raw, len(dates))
		}
		for i, l := range labels {
			if !bounds[i].Before(bounds[i+1]) || l < 0 || l >= len(dates) {
				t.Fatalf("query %q: span %d of %v..%v, bucket %d", raw, i, bounds[i], bounds[i+1], l)
			}
			last := bounds[i+1].Add(-time.Nanosecond)
			if d := referenceDate(bounds[i], q.Location, q.Bucket); d != dates[l] || referenceDate(last, q.Location, q.Bucket) != d {
				t.Fatalf("query %q: span %d (%v..%v) in bucket %s, its ends in %s and %s", raw, i, bounds[i], bounds[i+1],
					dates[l], d, referenceDate(last, q.Location, q.Bucket))
			}
		}
	})
}
