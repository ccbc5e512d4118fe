package mood

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
)

// plainMood has Mood's fields and tags but not its MarshalJSON: what
// encoding/json writes by reflection, which the hand-written encoder must
// match byte for byte.
type plainMood Mood

func reflected(t *testing.T, ms []Mood) []byte {
	t.Helper()
	ps := make([]plainMood, len(ms))
	for i := range ms {
		ps[i] = plainMood(ms[i])
	}
	b, err := json.Marshal(ps)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzMoodJSON(f *testing.F) {
	f.Add("calm", "a walk", "work", "sun", int64(1733500000123456789), 7, true, true)
	f.Add(`quote " and \ back`, "<b>&amp;</b>\u2028\u2029", "é", "\x00\x1f\x7f", int64(0), -3, false, true)
	f.Add("\xff\xfe invalid", "tab\tnew\nline", "", "emoji 🙂", int64(-62135596800000000), 10, true, false)
	f.Fuzz(func(t *testing.T, label, note, tag1, tag2 string, nanos int64, score int, hasLabel, hasNote bool) {
		at := time.Unix(0, nanos).UTC()
		if y := at.Year(); y < 0 || y > 9999 {
			return // not a storable time (see appendTime)
		}
		m := Mood{ID: uuid.New(), Score: score, Tags: []string{tag1, tag2}, RecordedAt: at, CreatedAt: at.Add(time.Millisecond), UpdatedAt: at.Add(time.Microsecond), Version: nanos, ChangeSeq: int64(score)}
		if hasLabel {
			m.Label = &label
		}
		if hasNote {
			m.Note = &note
		}
		empty := Mood{ID: m.ID, RecordedAt: at, CreatedAt: at, UpdatedAt: at}
		tagless := m
		tagless.Tags = []string{}
		ms := []Mood{m, empty, tagless}
		want := reflected(t, ms)
		if got := AppendList(nil, ms); !bytes.Equal(got, want) {
			t.Fatalf("AppendList:\n got %s\nwant %s", got, want)
		}
		// json.Marshal of a Mood goes through MarshalJSON.
		got, err := json.Marshal(ms)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("json.Marshal: %v\n got %s\nwant %s", err, got, want)
		}
	})
}

func TestMoodJSONEmptyList(t *testing.T) {
	if got := string(AppendList(nil, nil)); got != "[]" {
		t.Fatalf("AppendList(nil) = %s", got)
	}
}

// The stored tags' fast path reads exactly what encoding/json reads, and
// gives way to it for anything it does not handle.
func FuzzDecodeTags(f *testing.F) {
	for _, s := range []string{`[]`, `["a","b"]`, ` [ "a" , "b" ] `, `["a\"b"]`, `["\u00e9"]`, `[1]`, `["a",]`, `["a"`, `null`, `{}`, `["a"]x`, "[\"\x01\"]", "[\"\x80\"]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want []string
		wantErr := json.Unmarshal(b, &want)
		if fast, ok := splitPlainTags(string(b), nil); ok {
			if wantErr != nil {
				t.Fatalf("%q: fast path accepted what encoding/json refuses (%v)", b, wantErr)
			}
			if len(fast) != len(want) {
				t.Fatalf("%q: fast %q, encoding/json %q", b, fast, want)
			}
			for i := range fast {
				if fast[i] != want[i] {
					t.Fatalf("%q: fast %q, encoding/json %q", b, fast, want)
				}
			}
		}
		got, err := decodeTags(b)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: decodeTags error %v, encoding/json %v", b, err, wantErr)
		}
		if err == nil && len(got) != len(want) {
			t.Fatalf("%q: decodeTags %q, encoding/json %q", b, got, want)
		}
	})
}
