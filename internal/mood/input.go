package mood

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/soulapp/soul/internal/jsonbody"
	"github.com/soulapp/soul/internal/problem"
)

// Optional is a JSON member that may be absent, null or a value, which a
// partial update must tell apart: absent keeps a field, null clears it.
type Optional[T any] struct {
	Set   bool // the member was present
	Null  bool // it was null
	Value T
}

// optional is what every Optional is, whatever its T.
type optional interface{ present() bool }

func (o Optional[T]) present() bool { return o.Set }

// UnmarshalJSON is called only for members present in the object, null
// included.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

// New is a validated mood to create.
//
// Every exported field is part of what Hash identifies, through its JSON
// encoding: a field added here is covered without being listed anywhere
// else. The encoding is what idempotency_keys.request_hash stores, so
// renaming a member, reordering the fields or adding one changes the hash
// of requests already recorded; a client retrying across the deploy within
// IdempotencyTTL would then be answered 422 idempotency_key_reused
// instead of its mood. A new field tagged omitempty keeps the hash of
// every request that leaves it out.
type New struct {
	Score int      `json:"score"`
	Label *string  `json:"label"`
	Note  *string  `json:"note"`
	Tags  []string `json:"tags"`
	// RecordedAt is nil when the client left it to the server's clock.
	RecordedAt *time.Time `json:"recorded_at"`
}

// Patch is a validated partial update: only the Set members change.
type Patch struct {
	Score      Optional[int]
	Label      Optional[string]
	Note       Optional[string]
	Tags       Optional[[]string]
	RecordedAt Optional[time.Time]
}

// Empty reports whether the patch changes nothing: no member is Set. It
// looks at every field, so a member added to Patch is seen without being
// listed here; each must be an Optional.
func (p Patch) Empty() bool {
	v := reflect.ValueOf(p)
	for i := range v.NumField() {
		if v.Field(i).Interface().(optional).present() {
			return false
		}
	}
	return true
}

type newBody struct {
	Score      *int     `json:"score"`
	Label      *string  `json:"label"`
	Note       *string  `json:"note"`
	Tags       []string `json:"tags"`
	RecordedAt *string  `json:"recorded_at"`
}

type patchBody struct {
	Score      Optional[int]      `json:"score"`
	Label      Optional[string]   `json:"label"`
	Note       Optional[string]   `json:"note"`
	Tags       Optional[[]string] `json:"tags"`
	RecordedAt Optional[string]   `json:"recorded_at"`
}

// DecodeNew reads the body of POST /api/moods. Its errors are
// *problem.Error: 400 invalid_json for a body that is not one JSON object of
// the known fields with their types, 422 validation_failed naming each
// field that breaks a rule. now is the server's clock, for recorded_at.
func DecodeNew(body []byte, now time.Time) (New, error) {
	var b newBody
	if err := jsonbody.DecodeBytes(body, &b); err != nil {
		return New{}, err
	}
	var v validator
	n := New{Label: b.Label, Note: b.Note}
	if b.Score == nil {
		v.add("score", "is required")
	} else {
		n.Score = *b.Score
		v.score(n.Score)
	}
	v.text("label", b.Label, MaxLabel)
	v.text("note", b.Note, MaxNote)
	n.Tags = v.tags(b.Tags)
	if b.RecordedAt != nil {
		if t, ok := v.recordedAt(*b.RecordedAt, now); ok {
			n.RecordedAt = &t
		}
	}
	if err := v.err(); err != nil {
		return New{}, err
	}
	return n, nil
}

// DecodePatch reads the body of PATCH /api/moods/{id}: any subset of the
// fields; null clears label and note and is refused for the others.
func DecodePatch(body []byte, now time.Time) (Patch, error) {
	var b patchBody
	if err := jsonbody.DecodeBytes(body, &b); err != nil {
		return Patch{}, err
	}
	var v validator
	p := Patch{Score: b.Score, Label: b.Label, Note: b.Note}
	if b.Score.Set {
		if b.Score.Null {
			v.add("score", "may not be null")
		} else {
			v.score(b.Score.Value)
		}
	}
	if b.Label.Set && !b.Label.Null {
		v.text("label", &b.Label.Value, MaxLabel)
	}
	if b.Note.Set && !b.Note.Null {
		v.text("note", &b.Note.Value, MaxNote)
	}
	if b.Tags.Set {
		if b.Tags.Null {
			v.add("tags", "may not be null; send [] to remove every tag")
		} else {
			p.Tags = Optional[[]string]{Set: true, Value: v.tags(b.Tags.Value)}
		}
	}
	if b.RecordedAt.Set {
		if b.RecordedAt.Null {
			v.add("recorded_at", "may not be null")
		} else if t, ok := v.recordedAt(b.RecordedAt.Value, now); ok {
			p.RecordedAt = Optional[time.Time]{Set: true, Value: t}
		}
	}
	if err := v.err(); err != nil {
		return Patch{}, err
	}
	return p, nil
}

// NormalizeTags trims and lower-cases tags and merges duplicates, keeping
// the order of first appearance.
func NormalizeTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if seen[t] {
			continue
		}
		seen[t] = true
		out = append(out, t)
	}
	return out
}

// Hash identifies what a create asked for, so a retry with the same
// Idempotency-Key can be told from a different request under that key. It
// is the SHA-256 of the JSON encoding of the whole value (see New), after
// the normalisation Create applies: no tags hash as [], recorded_at in UTC
// to the microsecond. recorded_at left to the server counts as absent, not
// as the time it got.
func (n New) Hash() []byte {
	if n.Tags == nil {
		n.Tags = []string{}
	}
	if n.RecordedAt != nil {
		t := dbTime(*n.RecordedAt)
		n.RecordedAt = &t
	}
	b, err := json.Marshal(n)
	if err != nil {
		// Only a recorded_at outside years 0 to 9999 fails to encode, and
		// DecodeNew keeps it between 1970 and the near future.
		panic(fmt.Sprintf("mood: hashing a new mood: %v", err))
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// validator collects field errors in the order the fields are checked.
type validator struct {
	fields []problem.FieldError
}

func (v *validator) add(field, message string) {
	v.fields = append(v.fields, problem.FieldError{Field: field, Message: message})
}

func (v *validator) err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return problem.Validation(v.fields...)
}

func (v *validator) score(s int) {
	if s < MinScore || s > MaxScore {
		v.add("score", fmt.Sprintf("must be between %d and %d", MinScore, MaxScore))
	}
}

// text checks a free-text field. NUL is refused because Postgres cannot
// store it in text, and the two databases must agree.
func (v *validator) text(field string, s *string, max int) {
	if s == nil {
		return
	}
	if n := utf8.RuneCountInString(*s); n > max {
		v.add(field, fmt.Sprintf("must be at most %d characters (got %d)", max, n))
	}
	if strings.ContainsRune(*s, 0) {
		v.add(field, "must not contain NUL characters")
	}
}

// tags normalises the tags and checks them; it returns [] for none, never
// nil, so the stored array is [] rather than null.
func (v *validator) tags(raw []string) []string {
	if len(raw) == 0 {
		return []string{}
	}
	tags := NormalizeTags(raw)
	if len(tags) > MaxTags {
		v.add("tags", fmt.Sprintf("must have at most %d distinct tags (got %d)", MaxTags, len(tags)))
	}
	for i, t := range tags {
		field := "tags[" + strconv.Itoa(i) + "]"
		if n := utf8.RuneCountInString(t); n < 1 || n > MaxTagLength {
			v.add(field, fmt.Sprintf("must be 1 to %d characters after trimming", MaxTagLength))
		}
		if strings.ContainsRune(t, 0) {
			v.add(field, "must not contain NUL characters")
		}
	}
	return tags
}

// earliest bounds recorded_at below: nothing in a mood journal predates
// the Unix epoch, and the bound keeps cursors and both databases' time
// types well inside their ranges.
var earliest = time.Unix(0, 0).UTC()

func (v *validator) recordedAt(s string, now time.Time) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		v.add("recorded_at", "must be an RFC 3339 date-time such as 2026-01-02T15:04:05Z")
		return time.Time{}, false
	}
	t = dbTime(t)
	switch {
	case t.After(now.Add(FutureSlack)):
		v.add("recorded_at", "must not be more than 5 minutes in the future")
		return time.Time{}, false
	case t.Before(earliest):
		v.add("recorded_at", "must not be before 1970-01-01T00:00:00Z")
		return time.Time{}, false
	}
	return t, true
}
