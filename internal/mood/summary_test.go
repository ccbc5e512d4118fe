package mood

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/problem"
)

// referenceDate is the first day of the bucket holding t in loc, computed
// the plain way: the local calendar date of t, then civil arithmetic.
func referenceDate(t time.Time, loc *time.Location, unit Bucket) string {
	y, m, d := t.In(loc).Date()
	switch unit {
	case BucketWeek:
		wd := time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Weekday()
		back := (int(wd) + 6) % 7
		return time.Date(y, m, d-back, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	case BucketMonth:
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
}

// referenceSummary is the summary computed in Go over every mood, the way
// a client holding them all would.
func referenceSummary(moods []Mood, q SummaryQuery) Summary {
	type acc struct {
		n, sum, lo, hi int
		tags           map[string]int
	}
	by := map[string]*acc{}
	for _, m := range moods {
		if m.RecordedAt.Before(q.From) || !m.RecordedAt.Before(q.To) {
			continue
		}
		d := referenceDate(m.RecordedAt, q.Location, q.Bucket)
		a := by[d]
		if a == nil {
			a = &acc{lo: m.Score, hi: m.Score, tags: map[string]int{}}
			by[d] = a
		}
		a.n++
		a.sum += m.Score
		a.lo, a.hi = min(a.lo, m.Score), max(a.hi, m.Score)
		for _, tag := range m.Tags {
			a.tags[tag]++
		}
	}
	out := Summary{From: q.From, To: q.To, Bucket: q.Bucket, Zone: q.Zone, Buckets: []SummaryBucket{}}
	for d, a := range by {
		b := SummaryBucket{Date: d, Count: a.n, Mean: float64(a.sum) / float64(a.n), Min: a.lo, Max: a.hi, TopTags: []TagCount{}}
		for tag, n := range a.tags {
			b.TopTags = append(b.TopTags, TagCount{tag, n})
		}
		sort.Slice(b.TopTags, func(i, j int) bool {
			x, y := b.TopTags[i], b.TopTags[j]
			return x.Count > y.Count || x.Count == y.Count && x.Tag < y.Tag
		})
		b.TopTags = b.TopTags[:min(len(b.TopTags), MaxTopTags)]
		out.Buckets = append(out.Buckets, b)
	}
	sort.Slice(out.Buckets, func(i, j int) bool { return out.Buckets[i].Date < out.Buckets[j].Date })
	return out
}

// Zones with the awkward transitions: DST at 01:00 UTC (London), at local
// midnight (São Paulo 2018, Havana), by half an hour (Lord Howe), a
// whole day skipped (Apia, 30 December 2011), a quarter-hour offset
// (Kathmandu), clocks back across midnight of a Saturday (Casablanca's
// Ramadan changes move by an hour at 02:00/03:00).
var awkwardZones = []string{"Europe/London", "America/Sao_Paulo", "America/Havana", "Australia/Lord_Howe",
	"Pacific/Apia", "Asia/Kathmandu", "Africa/Casablanca", "America/New_York", "UTC", "Etc/GMT-14"}

// Every instant of a range falls in the span whose bucket is its local
// calendar bucket, at random instants and on each side of every change of
// the zone's offset.
func TestSegmentsAreTheLocalCalendar(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	ranges := [][2]time.Time{
		{time.Date(2010, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2013, 5, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2017, 12, 31, 13, 37, 0, 500, time.UTC), time.Date(2020, 2, 2, 0, 0, 0, 0, time.UTC)},
		{time.Date(2025, 11, 3, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)},
	}
	for _, name := range awkwardZones {
		loc, err := LoadZone(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, unit := range []Bucket{BucketDay, BucketWeek, BucketMonth} {
			for _, rg := range ranges {
				from, to := dbTime(rg[0]), dbTime(rg[1])
				bounds, labels, dates := segments(from, to, loc, unit)
				if len(bounds) != len(labels)+1 || !bounds[0].Equal(from) || !bounds[len(bounds)-1].Equal(to) {
					t.Fatalf("%s %s: %d bounds for %d spans, %v..%v", name, unit, len(bounds), len(labels), bounds[0], bounds[len(bounds)-1])
				}
				for i := 1; i < len(bounds); i++ {
					if !bounds[i-1].Before(bounds[i]) {
						t.Fatalf("%s %s: bounds not ascending at %d: %v, %v", name, unit, i, bounds[i-1], bounds[i])
					}
				}
				if !slices.IsSorted(dates) {
					t.Fatalf("%s %s: dates not sorted", name, unit)
				}
				instants := []time.Time{from, to.Add(-time.Microsecond)}
				for range 3000 {
					instants = append(instants, from.Add(time.Duration(r.Int64N(int64(to.Sub(from))))).Truncate(time.Microsecond))
				}
				// Each side of every offset change and every span edge.
				for tt := from; tt.Before(to); {
					_, end := tt.In(loc).ZoneBounds()
					if end.IsZero() || !end.Before(to) {
						break
					}
					instants = append(instants, end.Add(-time.Microsecond), end)
					tt = end
				}
				for _, b := range bounds[1 : len(bounds)-1] {
					instants = append(instants, b.Add(-time.Microsecond), b)
				}
				for _, at := range instants {
					if at.Before(from) || !at.Before(to) {
						continue
					}
					i := sort.Search(len(bounds), func(i int) bool { return bounds[i].After(at) }) - 1
					if got, want := dates[labels[i]], referenceDate(at, loc, unit); got != want {
						t.Fatalf("%s %s: %v (local %v) in span %d of bucket %s, want %s", name, unit, at, at.In(loc), i, got, want)
					}
				}
			}
		}
	}
}

// One day of Apia never happened: no bucket is made for it.
func TestSegmentsSkipAMissingDay(t *testing.T) {
	t.Parallel()
	loc, err := LoadZone("Pacific/Apia")
	if err != nil {
		t.Fatal(err)
	}
	_, _, dates := segments(time.Date(2011, 12, 29, 0, 0, 0, 0, time.UTC), time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC), loc, BucketDay)
	if slices.Contains(dates, "2011-12-30") || !slices.Contains(dates, "2011-12-29") || !slices.Contains(dates, "2011-12-31") {
		t.Fatalf("dates %v", dates)
	}
}

// migratedSQLite opens a fresh, migrated SQLite file.
func migratedSQLite(t *testing.T) *bun.DB {
	t.Helper()
	return migrated(t, database.Config{SQLitePath: filepath.Join(t.TempDir(), "soul.db")})
}

// summaryMoods are a user's moods over a year and a half: one every few
// hours at random, and a cluster around each London midnight and DST
// change (the last microsecond of a day, its first, 00:59 and 01:00 UTC
// on the changes), with tags that tie.
func summaryMoods(user uuid.UUID) []Mood {
	r := rand.New(rand.NewPCG(3, 5))
	tags := [][]string{nil, {"work"}, {"sleep", "work"}, {"a", "b"}, {"b", "a", "é"}, {"z"}, {"é", "Zoo", "work"}, {"🙂"}}
	var at []time.Time
	start := time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	for tt := start; tt.Before(time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)); tt = tt.Add(time.Duration(1+r.IntN(17)) * time.Hour) {
		at = append(at, tt.Add(time.Duration(r.Int64N(int64(time.Hour)))).Truncate(time.Microsecond))
	}
	london, _ := time.LoadLocation("Europe/London")
	for _, day := range []time.Time{
		time.Date(2026, 3, 28, 0, 0, 0, 0, london), time.Date(2026, 3, 29, 0, 0, 0, 0, london), time.Date(2026, 3, 30, 0, 0, 0, 0, london),
		time.Date(2026, 10, 24, 0, 0, 0, 0, london), time.Date(2026, 10, 25, 0, 0, 0, 0, london), time.Date(2026, 10, 26, 0, 0, 0, 0, london),
		time.Date(2026, 6, 1, 0, 0, 0, 0, london), time.Date(2027, 1, 1, 0, 0, 0, 0, london),
	} {
		at = append(at, day, day.Add(-time.Microsecond), day.Add(time.Microsecond))
	}
	for _, change := range []time.Time{time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC)} {
		at = append(at, change, change.Add(-time.Microsecond), change.Add(-time.Minute), change.Add(time.Hour), change.Add(-time.Hour))
	}
	moods := make([]Mood, len(at))
	for i, a := range at {
		ts := tags[r.IntN(len(tags))]
		if ts == nil {
			ts = []string{}
		}
		moods[i] = Mood{ID: uuid.New(), UserID: user, Score: 1 + r.IntN(10), Tags: ts, RecordedAt: dbTime(a), CreatedAt: dbTime(a), UpdatedAt: dbTime(a)}
	}
	return moods
}

// On SQLite and on Postgres the summary is the Go computation over the
// same rows, to the float, in every awkward zone and bucket, over the
// whole range and over ranges starting and ending inside a bucket; another
// user's moods are never counted.
func TestSummaryMatchesGo(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var db *bun.DB
			if kind == "sqlite" {
				db = migratedSQLite(t)
			} else {
				db = migratedPostgres(t)
			}
			ctx := context.Background()
			user, other := uuid.New(), uuid.New()
			for i, id := range []uuid.UUID{user, other} {
				if _, err := db.NewInsert().Model(&struct {
					bun.BaseModel `bun:"table:users"`
					ID            uuid.UUID `bun:"id,type:uuid"`
					Phone         string    `bun:"phone"`
					CreatedAt     time.Time `bun:"created_at"`
				}{ID: id, Phone: fmt.Sprintf("+4474001000%02d", i), CreatedAt: time.Now().UTC()}).Exec(ctx); err != nil {
					t.Fatal(err)
				}
			}
			moods := summaryMoods(user)
			if _, err := db.NewInsert().Model(&moods).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			others := summaryMoods(other)[:50]
			if _, err := db.NewInsert().Model(&others).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			s := NewStore(db, nil)
			nonEmpty := 0
			zones, ranges := awkwardZones, [][2]string{
				{"2025-09-01T00:00:00Z", "2027-02-01T00:00:00Z"},
				{"2026-03-28T23:59:59.999999Z", "2026-10-25T01:00:00.000001+00:00"},
				{"2026-03-29T00:30:00+01:00", "2026-03-29T02:00:00+01:00"},
			}
			if kind == "sqlite" {
				// Both databases get the same spans from the same Go code;
				// SQLite's statement is checked on fewer zones, since under
				// -race the embedded SQLite runs some twenty times slower.
				zones, ranges = []string{"Europe/London", "Australia/Lord_Howe"}, ranges[1:]
			}
			for _, name := range zones {
				for _, unit := range []Bucket{BucketDay, BucketWeek, BucketMonth} {
					for _, rg := range ranges {
						q, err := ParseSummaryQuery(url.Values{"from": {rg[0]}, "to": {rg[1]}, "bucket": {string(unit)}, "tz": {name}})
						if err != nil {
							t.Fatal(err)
						}
						got, err := s.Summary(ctx, user, q)
						if err != nil {
							t.Fatal(err)
						}
						want := referenceSummary(moods, q)
						if !reflect.DeepEqual(got, want) {
							t.Fatalf("%s %s %v: got\n%+v\nwant\n%+v", name, unit, rg, got, want)
						}
						if len(got.Buckets) > 0 {
							nonEmpty++
						}
						if js, _ := json.Marshal(got); string(got.AppendJSON(nil)) != string(js) {
							t.Fatalf("AppendJSON\n%s\nencoding/json\n%s", got.AppendJSON(nil), js)
						}
					}
				}
			}
			if nonEmpty < len(zones)*3 {
				t.Fatalf("only %d non-empty summaries compared", nonEmpty)
			}
		})
	}
}

// AppendJSON writes what encoding/json writes, escapes and floats included.
func TestSummaryAppendJSON(t *testing.T) {
	t.Parallel()
	s := Summary{From: time.Date(2026, 1, 1, 0, 0, 0, 123000, time.UTC), To: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		Bucket: BucketMonth, Zone: "Etc/GMT+5", Buckets: []SummaryBucket{
			{Date: "2026-01-01", Count: 3, Mean: 19.0 / 3, Min: 1, Max: 10, TopTags: []TagCount{{`<b>&"x"\`, 2}, {"é\u2028", 1}, {"🙂", 1}}},
			{Date: "2026-02-01", Count: 1, Mean: 7, Min: 7, Max: 7, TopTags: []TagCount{}},
			{Date: "2026-03-01", Count: 7, Mean: 1e-7, Min: 1, Max: 1, TopTags: []TagCount{}},
		}}
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.AppendJSON(nil); string(got) != string(js) {
		t.Fatalf("AppendJSON\n%s\nencoding/json\n%s", got, js)
	}
	empty := Summary{Bucket: BucketDay, Zone: "UTC", Buckets: []SummaryBucket{}, From: s.From, To: s.To}
	if js, _ := json.Marshal(empty); string(empty.AppendJSON(nil)) != string(js) {
		t.Fatalf("empty: %s, want %s", empty.AppendJSON(nil), js)
	}
}

// A range with no mood is an empty list of buckets, not null.
func TestSummaryEmpty(t *testing.T) {
	t.Parallel()
	db := migratedSQLite(t)
	q, err := ParseSummaryQuery(url.Values{"from": {"2026-01-01T00:00:00Z"}, "to": {"2026-02-01T00:00:00Z"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewStore(db, nil).Summary(context.Background(), uuid.New(), q)
	if err != nil || got.Buckets == nil || len(got.Buckets) != 0 || got.Zone != "UTC" || got.Bucket != BucketDay {
		t.Fatalf("%+v, %v", got, err)
	}
}

func TestParseSummaryQuery(t *testing.T) {
	t.Parallel()
	ok := "from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z"
	for _, c := range []struct {
		query  string
		fields []string
	}{
		{ok, nil},
		{ok + "&bucket=week&tz=Europe/London", nil},
		{ok + "&tz=America/Argentina/Buenos_Aires", nil},
		{ok + "&tz=Etc/GMT%2B5", nil},
		{ok + "&tz=EST5EDT", nil},
		{"", []string{"from", "to"}},
		{"from=2026-01-01&to=2026-02-01", []string{"from", "to"}},
		{ok + "&bucket=year", []string{"bucket"}},
		{ok + "&bucket=Day", []string{"bucket"}},
		{ok + "&tz=Europe/Londres", []string{"tz"}},
		{ok + "&tz=europe/london", []string{"tz"}},
		{ok + "&tz=Local", []string{"tz"}},
		{ok + "&tz=right/Europe/London", []string{"tz"}},
		{ok + "&tz=posix/Europe/London", []string{"tz"}},
		{ok + "&tz=../../etc/passwd", []string{"tz"}},
		{ok + "&tz=/usr/share/zoneinfo/UTC", []string{"tz"}},
		{ok + "&tz=Europe//London", []string{"tz"}},
		{ok + "&tz=zone.tab", []string{"tz"}},
		{"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", []string{"to"}},
		{"from=2026-02-01T00:00:00Z&to=2026-02-01T00:00:00Z", []string{"to"}},
		// Three years of days at most, ten of weeks or months.
		{"from=2023-01-01T00:00:00Z&to=2026-01-03T00:00:00Z", nil},
		{"from=2023-01-01T00:00:00Z&to=2026-01-04T00:00:00Z", []string{"to"}},
		{"from=2016-01-01T00:00:00Z&to=2026-01-08T00:00:00Z&bucket=week", nil},
		{"from=2016-01-01T00:00:00Z&to=2026-01-09T00:00:00Z&bucket=month", []string{"to"}},
		{"from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&bucket=month&tz=nope", []string{"tz", "to"}},
	} {
		q, err := ParseSummaryQuery(mustQuery(t, c.query))
		var fields []string
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Status != 422 {
				t.Fatalf("%q: %v is not a 422 problem", c.query, err)
			}
			for _, fe := range pe.Fields {
				fields = append(fields, fe.Field)
			}
		}
		slices.Sort(fields)
		want := slices.Clone(c.fields)
		slices.Sort(want)
		if !slices.Equal(fields, want) {
			t.Errorf("%q: fields %v (%v), want %v", c.query, fields, err, want)
		}
		if err == nil && (q.Location == nil || q.From.Location() != time.UTC) {
			t.Errorf("%q: %+v", c.query, q)
		}
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
