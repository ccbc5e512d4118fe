package mood

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// A Mood is written as JSON by hand: the list is the most frequent answer,
// and encoding/json's reflection over its fields was a large part of its
// cost. The output is byte for byte what encoding/json writes for the
// struct's tags (a fuzz test holds the two together), so every answer
// with a Mood in it — the list, one mood, the export — reads the same.

// MarshalJSON writes m as encoding/json would from its field tags.
func (m Mood) MarshalJSON() ([]byte, error) {
	return m.AppendJSON(make([]byte, 0, 256)), nil
}

// AppendJSON appends m as JSON to b.
func (m *Mood) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":"`...)
	b = appendUUID(b, m.ID)
	b = append(b, `","score":`...)
	b = strconv.AppendInt(b, int64(m.Score), 10)
	b = append(b, `,"label":`...)
	b = appendNullableString(b, m.Label)
	b = append(b, `,"note":`...)
	b = appendNullableString(b, m.Note)
	b = append(b, `,"tags":`...)
	if m.Tags == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, t := range m.Tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, t)
		}
		b = append(b, ']')
	}
	b = append(b, `,"recorded_at":`...)
	b = appendTime(b, m.RecordedAt)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, m.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, m.UpdatedAt)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, m.Version, 10)
	return append(b, '}')
}

// AppendList appends ms as a JSON array to b.
func AppendList(b []byte, ms []Mood) []byte {
	b = append(b, '[')
	for i := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = ms[i].AppendJSON(b)
	}
	return append(b, ']')
}

// listBuffers hold the bodies of list answers between requests.
var listBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// ListBuffer returns a pooled buffer for AppendList; give it back with
// PutListBuffer once written.
func ListBuffer() *[]byte { return listBuffers.Get().(*[]byte) }

// PutListBuffer returns b to the pool, unless a huge page made it too big
// to keep.
func PutListBuffer(b *[]byte) {
	if cap(*b) > 1<<20 {
		return
	}
	*b = (*b)[:0]
	listBuffers.Put(b)
}

const hexDigits = "0123456789abcdef"

// appendUUID writes the canonical 36-character form, as uuid.UUID's
// MarshalText does.
func appendUUID(b []byte, u [16]byte) []byte {
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

func appendNullableString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendString(b, *s)
}

// appendString writes s quoted. Plain text is copied as is; anything that
// encoding/json escapes (quotes, backslashes, control characters, <, >, &,
// U+2028 and U+2029, invalid UTF-8) goes to encoding/json itself, so the
// escaping cannot drift from it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendTime writes t as time.Time's MarshalJSON does: RFC 3339 with
// nanoseconds, trailing zeros dropped. Stored times come from RFC 3339
// input or the clock, so their year has four digits, as MarshalJSON needs.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// AppendChanges appends a page of the change feed as JSON to b:
// {"changes":[...],"next_cursor":"…","has_more":…}, each change a mood or
// a tombstone {"id","deleted":true,"deleted_at"}. next is page.Next,
// encoded; it is URL-safe base64, so it needs no escaping.
func AppendChanges(b []byte, page ChangesPage, next string) []byte {
	b = append(b, `{"changes":[`...)
	for i := range page.Changes {
		if i > 0 {
			b = append(b, ',')
		}
		c := &page.Changes[i]
		if c.Mood != nil {
			b = c.Mood.AppendJSON(b)
			continue
		}
		b = append(b, `{"id":"`...)
		b = appendUUID(b, c.ID)
		b = append(b, `","deleted":true,"deleted_at":`...)
		b = appendTime(b, c.DeletedAt)
		b = append(b, '}')
	}
	b = append(b, `],"next_cursor":"`...)
	b = append(b, next...)
	b = append(b, `","has_more":`...)
	b = strconv.AppendBool(b, page.More)
	return append(b, '}')
}
