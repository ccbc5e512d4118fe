package mood

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	// The zone names a summary accepts must not depend on the host: a
	// minimal image without /usr/share/zoneinfo still knows them all.
	_ "time/tzdata"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/problem"
	"github.com/soulapp/soul/internal/tracing"
)

// Bucket is the calendar unit a summary groups moods by, in the user's
// time zone.
type Bucket string

// The buckets of a summary. A week starts on Monday (ISO 8601), a month on
// its first day; each at midnight in the zone.
const (
	BucketDay   Bucket = "day"
	BucketWeek  Bucket = "week"
	BucketMonth Bucket = "month"
)

// MaxSummarySpan is the longest range (to - from) a summary covers with
// each bucket, so an answer holds a bounded number of buckets: three years
// of days (at most 1,099), ten years of weeks (524) or months (121).
var MaxSummarySpan = map[Bucket]time.Duration{
	BucketDay:   3 * 366 * 24 * time.Hour,
	BucketWeek:  10 * 366 * 24 * time.Hour,
	BucketMonth: 10 * 366 * 24 * time.Hour,
}

// MaxTopTags is how many tags a summary bucket names.
const MaxTopTags = 3

// MaxZoneName bounds the tz parameter (characters); the longest name in
// the tz database has 32.
const MaxZoneName = 64

// SummaryQuery is a parsed GET /api/moods/summary.
type SummaryQuery struct {
	// From <= recorded_at < To, in UTC to the microsecond.
	From, To time.Time
	Bucket   Bucket
	// Zone is the IANA name as given ("UTC" when absent); Location is it
	// loaded.
	Zone     string
	Location *time.Location
}

// ParseSummaryQuery reads GET /api/moods/summary's query: from and to
// (required, RFC 3339 as the list takes them, from inclusive, to
// exclusive), bucket (day, week or month; day by default) and tz (an IANA
// time zone name; UTC by default). Its errors are 422 problems naming each
// field, as the list's are.
func ParseSummaryQuery(v url.Values) (SummaryQuery, error) {
	q := SummaryQuery{Bucket: BucketDay, Zone: "UTC", Location: time.UTC}
	var fields []problem.FieldError
	bad := func(field, msg string) { fields = append(fields, problem.FieldError{Field: field, Message: msg}) }
	var haveFrom, haveTo bool
	for _, b := range []struct {
		name string
		dst  *time.Time
		ok   *bool
	}{{"from", &q.From, &haveFrom}, {"to", &q.To, &haveTo}} {
		s := v.Get(b.name)
		if s == "" {
			bad(b.name, "is required: an RFC 3339 date-time such as 2026-01-02T15:04:05Z")
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			bad(b.name, "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z")
			continue
		}
		*b.dst, *b.ok = dbTime(t), true
	}
	switch s := v.Get("bucket"); Bucket(s) {
	case "":
	case BucketDay, BucketWeek, BucketMonth:
		q.Bucket = Bucket(s)
	default:
		bad("bucket", "must be day, week or month")
	}
	if s := v.Get("tz"); s != "" {
		loc, err := LoadZone(s)
		if err != nil {
			bad("tz", "must be a time zone name of the IANA tz database, such as Europe/London")
		} else {
			q.Zone, q.Location = s, loc
		}
	}
	if haveFrom && haveTo {
		switch span := q.To.Sub(q.From); {
		case span <= 0:
			bad("to", "must be after from")
		case span > MaxSummarySpan[q.Bucket]:
			bad("to", "must be at most "+strconv.Itoa(int(MaxSummarySpan[q.Bucket]/(24*time.Hour)))+" days after from with "+string(q.Bucket)+" buckets")
		}
	}
	if len(fields) > 0 {
		return q, problem.Validation(fields...)
	}
	return q, nil
}

// zones caches the zones loaded so far: time.LoadLocation reads and parses
// a file on every call. Only names that loaded are kept, so the cache holds
// at most the tz database's few hundred zones.
var zones sync.Map // string → *time.Location

// errZone: a name that is not a zone of the tz database.
var errZone = errors.New("mood: unknown time zone")

// LoadZone loads an IANA zone by name. The name's shape is checked before
// time.LoadLocation sees it: LoadLocation also answers "Local" (the
// server's own zone) and "" (UTC), and reads files of the system's
// zoneinfo directory that are not zones of their own ("right/..." counts
// leap seconds, "posix/..." duplicates).
func LoadZone(name string) (*time.Location, error) {
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	if !zoneNameShape(name) || name == "Local" || strings.HasPrefix(name, "right/") || strings.HasPrefix(name, "posix/") {
		return nil, errZone
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, errZone
	}
	zones.Store(name, loc)
	return loc, nil
}

// zoneNameShape: 1 to MaxZoneName of [A-Za-z0-9_+-/], each part between
// slashes starting with a letter (tz names are "Area/Location", "UTC",
// "Etc/GMT+5", "EST5EDT").
func zoneNameShape(name string) bool {
	if name == "" || len(name) > MaxZoneName {
		return false
	}
	for part := range strings.SplitSeq(name, "/") {
		if part == "" || !(part[0] >= 'A' && part[0] <= 'Z' || part[0] >= 'a' && part[0] <= 'z') {
			return false
		}
		for i := range len(part) {
			c := part[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '+' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Summary is the answer of GET /api/moods/summary.
type Summary struct {
	From    time.Time       `json:"from"`
	To      time.Time       `json:"to"`
	Bucket  Bucket          `json:"bucket"`
	Zone    string          `json:"tz"`
	Buckets []SummaryBucket `json:"buckets"`
}

// SummaryBucket is one calendar bucket with at least one mood.
type SummaryBucket struct {
	// Date is the bucket's first day in the zone, YYYY-MM-DD: the day, the
	// week's Monday, the month's 1st. The first and last buckets count
	// only moods within the query's range.
	Date  string  `json:"date"`
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	Min   int     `json:"min"`
	Max   int     `json:"max"`
	// TopTags are the MaxTopTags tags most moods of the bucket carry, most
	// first, ties in byte order of the tag.
	TopTags []TagCount `json:"top_tags"`
}

// AppendJSON appends s as encoding/json would write it (a test holds the
// two equal), without its reflection: a year of days is 365 buckets.
func (s *Summary) AppendJSON(b []byte) []byte {
	b = append(b, `{"from":`...)
	b = appendTime(b, s.From)
	b = append(b, `,"to":`...)
	b = appendTime(b, s.To)
	b = append(b, `,"bucket":`...)
	b = appendString(b, string(s.Bucket))
	b = append(b, `,"tz":`...)
	b = appendString(b, s.Zone)
	b = append(b, `,"buckets":[`...)
	for i := range s.Buckets {
		k := &s.Buckets[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"date":`...)
		b = appendString(b, k.Date)
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, int64(k.Count), 10)
		b = append(b, `,"mean":`...)
		b = appendFloat(b, k.Mean)
		b = append(b, `,"min":`...)
		b = strconv.AppendInt(b, int64(k.Min), 10)
		b = append(b, `,"max":`...)
		b = strconv.AppendInt(b, int64(k.Max), 10)
		b = append(b, `,"top_tags":[`...)
		for j, tc := range k.TopTags {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"tag":`...)
			b = appendString(b, tc.Tag)
			b = append(b, `,"count":`...)
			b = strconv.AppendInt(b, int64(tc.Count), 10)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}

// appendFloat writes f as encoding/json does: shortest form, in exponent
// form only outside [1e-6, 1e21). A mean lies in [1, 10].
func appendFloat(b []byte, f float64) []byte {
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		q, _ := json.Marshal(f)
		return append(b, q...)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// TagCount is how many moods of a bucket carry a tag.
type TagCount struct {
	Tag   string `json:"tag"`
	Count int    `json:"count"`
}

// segments splits [from, to) into spans that each lie in one bucket and in
// one period of the zone's UTC offset, so that inside a span the zone's
// wall clock is the instant plus a constant. bounds are the spans' edges
// (len(labels)+1, ascending, from first and to last); labels[i] is the
// index in dates of span i's bucket; dates are the buckets' first days,
// ascending. Adjacent spans of one bucket are merged, so in a zone whose
// clocks change only within a bucket (every zone with DST at night, for
// days) there is one span per bucket; a bucket can still own two spans
// apart when clocks go back across its end (00:30 back to 23:30), since
// the moods of the repeated half hour belong to the earlier day.
//
// The boundaries come from Go's tz database, the one that validated the
// name, and are the same whichever database then counts the moods.
func segments(from, to time.Time, loc *time.Location, unit Bucket) (bounds []time.Time, labels []int, dates []string) {
	type span struct {
		start time.Time
		date  time.Time // the bucket's first day, as a UTC midnight
	}
	var spans []span
	for t := from; t.Before(to); {
		lt := t.In(loc)
		_, off := lt.Zone()
		_, zoneEnd := lt.ZoneBounds()
		offset := time.Duration(off) * time.Second
		wall := t.Add(offset).UTC()
		first := bucketStart(wall, unit)
		end := bucketNext(first, unit).Add(-offset)
		if !zoneEnd.IsZero() && zoneEnd.Before(end) {
			end = zoneEnd
		}
		if to.Before(end) {
			end = to
		}
		if n := len(spans); n == 0 || !spans[n-1].date.Equal(first) {
			spans = append(spans, span{start: t, date: first})
		}
		t = end
	}
	index := map[time.Time]int{}
	var order []time.Time
	for _, s := range spans {
		if _, ok := index[s.date]; !ok {
			index[s.date] = 0
			order = append(order, s.date)
		}
	}
	slices.SortFunc(order, func(a, b time.Time) int { return a.Compare(b) })
	for i, d := range order {
		index[d] = i
		dates = append(dates, d.Format(time.DateOnly))
	}
	for _, s := range spans {
		bounds = append(bounds, s.start)
		labels = append(labels, index[s.date])
	}
	bounds = append(bounds, to)
	return bounds, labels, dates
}

// bucketStart is the first day of wall's bucket, wall being a wall-clock
// time written as UTC.
func bucketStart(wall time.Time, unit Bucket) time.Time {
	y, m, d := wall.Date()
	switch unit {
	case BucketWeek:
		return time.Date(y, m, d-(int(wall.Weekday())+6)%7, 0, 0, 0, 0, time.UTC)
	case BucketMonth:
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// bucketNext is the first day of the bucket after the one starting first.
func bucketNext(first time.Time, unit Bucket) time.Time {
	switch unit {
	case BucketWeek:
		return first.AddDate(0, 0, 7)
	case BucketMonth:
		return first.AddDate(0, 1, 0)
	}
	return first.AddDate(0, 0, 1)
}

// Summary counts userID's moods of q.From <= recorded_at < q.To per bucket
// of q's zone: count, mean, min and max score and the top tags. The
// database does the grouping, reading the range from moods_user_recorded_idx
// (Postgres as one range, SQLite as one range per span); only one row per
// bucket and per top tag comes back. Both databases
// get the same span boundaries (see segments) and return integer sums, so
// they answer the same numbers.
func (s *Store) Summary(ctx context.Context, userID uuid.UUID, q SummaryQuery) (Summary, error) {
	out := Summary{From: q.From, To: q.To, Bucket: q.Bucket, Zone: q.Zone, Buckets: []SummaryBucket{}}
	bounds, labels, dates := segments(q.From, q.To, q.Location, q.Bucket)
	if len(dates) == 0 {
		return out, nil
	}
	acc := make([]summaryRow, len(dates))
	err := database.Native(ctx, s.db, func(c *pgx.Conn) error {
		return summaryNative(ctx, c, acc, userID, bounds, labels, database.StatementMode(c))
	})
	if errors.Is(err, database.ErrNotNative) {
		err = s.summarySQLite(ctx, acc, userID, bounds, labels)
	}
	if err != nil {
		return Summary{}, fmt.Errorf("mood: summary: %w", err)
	}
	for i, a := range acc {
		if a.count == 0 {
			continue
		}
		b := SummaryBucket{
			Date: dates[i], Count: int(a.count), Min: int(a.min), Max: int(a.max),
			// From the integer sum, here, so that both databases' means
			// are the same float.
			Mean:    float64(a.sum) / float64(a.count),
			TopTags: a.tags,
		}
		if b.TopTags == nil {
			b.TopTags = []TagCount{}
		}
		slices.SortFunc(b.TopTags, func(x, y TagCount) int {
			if x.Count != y.Count {
				return y.Count - x.Count
			}
			return strings.Compare(x.Tag, y.Tag)
		})
		out.Buckets = append(out.Buckets, b)
	}
	return out, nil
}

// summaryRow accumulates one bucket from the query's rows.
type summaryRow struct {
	count, sum, min, max int64
	tags                 []TagCount
}

// add takes one row of the summary statement: a bucket's figures (tag nil)
// or one of its top tags (n moods carry it).
func (r *summaryRow) add(n, sum, lo, hi int64, tag *string) {
	if tag != nil {
		r.tags = append(r.tags, TagCount{Tag: *tag, Count: int(n)})
		return
	}
	r.count, r.sum, r.min, r.max = n, sum, lo, hi
}

// summaryTail finishes both statements. m holds each mood of the range as
// (b, score, tags), b its bucket's index; the first verb is the tags'
// collation, the second the query expanding m's tags into (b, tag) rows.
// A bucket's figures come back with a NULL tag, each of its top tags with
// NULL figures. Ties are broken in byte order of the tag (COLLATE "C" on
// Postgres, SQLite's BINARY), as Go compares strings.
const summaryTail = `, s AS (
  SELECT b, count(*) AS n, sum(score) AS total, min(score) AS lo, max(score) AS hi FROM m GROUP BY b
), t AS (
  SELECT b, tag, count(*) AS n,
    row_number() OVER (PARTITION BY b ORDER BY count(*) DESC, tag %s) AS r
  FROM (%s) AS mt GROUP BY b, tag
)
SELECT b, n, total, lo, hi, NULL AS tag FROM s
UNION ALL
SELECT b, n, NULL, NULL, NULL, tag FROM t WHERE r <= `

// summaryPostgres reads the range once (user_id = $1 AND recorded_at in
// [$4, $5): one range of the index) and puts each mood in its span with
// width_bucket over the spans' edges ($2), then the span in its bucket
// ($3, 1-based as Postgres arrays are).
var summaryPostgres = `WITH m AS MATERIALIZED (
  SELECT ($3::int[])[width_bucket(recorded_at, $2::timestamptz[])] AS b, score, tags
  FROM moods WHERE user_id = $1 AND recorded_at >= $4 AND recorded_at < $5
)` + fmt.Sprintf(summaryTail, `COLLATE "C"`, "SELECT m.b, x.tag FROM m CROSS JOIN LATERAL jsonb_array_elements_text(m.tags) AS x(tag)") + strconv.Itoa(MaxTopTags)

// summaryNative runs summaryPostgres in mode: database.StatementMode, or
// the simple protocol bun would use, to compare them.
func summaryNative(ctx context.Context, c *pgx.Conn, acc []summaryRow, userID uuid.UUID, bounds []time.Time, labels []int, mode pgx.QueryExecMode) (err error) {
	ctx, end := tracing.Query(ctx, "postgresql", "SELECT", "moods")
	defer func() { end(err) }()
	// Postgres arrays count from 1: label i+1 is bucket index i+1 - 1.
	one := make([]int32, len(labels))
	for i, l := range labels {
		one[i] = int32(l + 1)
	}
	rows, err := c.Query(ctx, summaryPostgres, mode,
		pgtype.UUID{Bytes: userID, Valid: true}, bounds, one, bounds[0], bounds[len(bounds)-1])
	if err != nil {
		return err
	}
	defer rows.Close()
	// Reused for every row, and each tag's text read from the wire and
	// interned: a year of days is some 1,300 rows, most of them tags
	// repeating from bucket to bucket.
	var (
		b           int32
		n           int64
		sum, lo, hi pgtype.Int8
		tags        = map[string]string{}
	)
	for rows.Next() {
		if err := rows.Scan(&b, &n, &sum, &lo, &hi, nil); err != nil {
			return err
		}
		var tag *string
		if raw := rows.RawValues()[5]; raw != nil {
			t, ok := tags[string(raw)]
			if !ok {
				t = string(raw)
				tags[t] = t
			}
			tag = &t
		}
		if err := addRow(acc, int(b)-1, n, int8Ptr(&sum), int8Ptr(&lo), int8Ptr(&hi), tag); err != nil {
			return err
		}
	}
	return rows.Err()
}

func int8Ptr(v *pgtype.Int8) *int64 {
	if !v.Valid {
		return nil
	}
	return &v.Int64
}

// summarySQLite is the same statement on SQLite, which has no
// width_bucket: the spans are a table of their own (from a JSON array),
// and each is one range of the index, joined to its moods: CROSS JOIN
// keeps the spans the outer loop (SQLite does not reorder it), so the JSON
// is read once rather than once per mood. Times are compared as the text
// bun stores them in.
var summarySQLite = `WITH sp(b, lo, hi) AS MATERIALIZED (
  SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?)
), m AS MATERIALIZED (
  SELECT sp.b AS b, moods.score AS score, moods.tags AS tags
  FROM sp CROSS JOIN moods ON moods.user_id = ? AND moods.recorded_at >= sp.lo AND moods.recorded_at < sp.hi
)` + fmt.Sprintf(summaryTail, "", "SELECT m.b AS b, x.value AS tag FROM m, json_each(m.tags) AS x") + strconv.Itoa(MaxTopTags)

// sqliteTime is how bun's SQLite dialect writes a time (UTC), so that the
// spans' edges compare with recorded_at as the list's bounds do.
const sqliteTime = "2006-01-02 15:04:05.999999-07:00"

func (s *Store) summarySQLite(ctx context.Context, acc []summaryRow, userID uuid.UUID, bounds []time.Time, labels []int) error {
	spans := make([][3]any, len(labels))
	for i, l := range labels {
		spans[i] = [3]any{l, bounds[i].UTC().Format(sqliteTime), bounds[i+1].UTC().Format(sqliteTime)}
	}
	js, err := json.Marshal(spans)
	if err != nil {
		return err
	}
	rows, err := s.db.QueryContext(ctx, summarySQLite, string(js), userID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var b, n int64
		var sum, lo, hi *int64
		var tag *string
		if err := rows.Scan(&b, &n, &sum, &lo, &hi, &tag); err != nil {
			return err
		}
		if err := addRow(acc, int(b), n, sum, lo, hi, tag); err != nil {
			return err
		}
	}
	return rows.Err()
}

func addRow(acc []summaryRow, b int, n int64, sum, lo, hi *int64, tag *string) error {
	if b < 0 || b >= len(acc) {
		return fmt.Errorf("row of bucket %d outside 0..%d", b, len(acc)-1)
	}
	if tag == nil {
		if sum == nil || lo == nil || hi == nil {
			return fmt.Errorf("bucket %d without figures", b)
		}
		acc[b].add(n, *sum, *lo, *hi, nil)
		return nil
	}
	acc[b].add(n, 0, 0, 0, tag)
	return nil
}
