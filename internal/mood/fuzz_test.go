package mood

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/soulapp/soul/internal/problem"
)

// FuzzDecodeMoodNew: any body is either a valid New or a 400/422 problem,
// never a panic, and what it accepts keeps every rule.
func FuzzDecodeMoodNew(f *testing.F) {
	for _, s := range []string{
		`{"score":5}`, `{"score":5,"label":"l","note":"n","tags":["A"," a "],"recorded_at":"2026-03-01T12:00:00Z"}`,
		`{"score":0}`, `{"tags":[null]}`, `{"score":1e3}`, `null`, `{"score":5,"note":"\u0000"}`, `{"score":-1,"tags":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := DecodeNew(body, testNow)
		if err != nil {
			wantProblem(t, err)
			return
		}
		if n.Score < MinScore || n.Score > MaxScore {
			t.Fatalf("accepted score %d", n.Score)
		}
		checkText(t, n.Label, MaxLabel)
		checkText(t, n.Note, MaxNote)
		checkTags(t, n.Tags)
		if n.RecordedAt != nil && (n.RecordedAt.After(testNow.Add(FutureSlack)) || n.RecordedAt.Before(earliest)) {
			t.Fatalf("accepted recorded_at %v", n.RecordedAt)
		}
		if len(n.Hash()) != 32 {
			t.Fatal("hash is not SHA-256")
		}
	})
}

// FuzzDecodeMoodPatch holds the same for partial updates.
func FuzzDecodeMoodPatch(f *testing.F) {
	for _, s := range []string{`{}`, `{"label":null}`, `{"score":null}`, `{"tags":["x","X"]}`, `{"recorded_at":"x"}`, `{"note":7}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodePatch(body, testNow)
		if err != nil {
			wantProblem(t, err)
			return
		}
		if p.Score.Set && (p.Score.Null || p.Score.Value < MinScore || p.Score.Value > MaxScore) {
			t.Fatalf("accepted score %+v", p.Score)
		}
		if p.Label.Set && !p.Label.Null {
			checkText(t, &p.Label.Value, MaxLabel)
		}
		if p.Note.Set && !p.Note.Null {
			checkText(t, &p.Note.Value, MaxNote)
		}
		if p.Tags.Set {
			checkTags(t, p.Tags.Value)
		}
		if p.RecordedAt.Set && p.RecordedAt.Value.After(testNow.Add(FutureSlack)) {
			t.Fatalf("accepted recorded_at %v", p.RecordedAt.Value)
		}
	})
}

func wantProblem(t *testing.T, err error) {
	t.Helper()
	var pe *problem.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a problem", err)
	}
	switch {
	case pe.Status == 400 && pe.Code == "invalid_json" && len(pe.Fields) == 0:
	case pe.Status == 422 && pe.Code == "validation_failed" && len(pe.Fields) > 0:
	default:
		t.Fatalf("unexpected problem %d %s %v", pe.Status, pe.Code, pe.Fields)
	}
}

func checkText(t *testing.T, s *string, max int) {
	t.Helper()
	if s != nil && (utf8.RuneCountInString(*s) > max || strings.ContainsRune(*s, 0)) {
		t.Fatalf("accepted text %q", *s)
	}
}

func checkTags(t *testing.T, tags []string) {
	t.Helper()
	if tags == nil || len(tags) > MaxTags {
		t.Fatalf("accepted tags %q", tags)
	}
	seen := map[string]bool{}
	for _, tag := range tags {
		n := utf8.RuneCountInString(tag)
		if n < 1 || n > MaxTagLength || tag != strings.ToLower(strings.TrimSpace(tag)) || seen[tag] || strings.ContainsRune(tag, 0) {
			t.Fatalf("accepted tags %q", tags)
		}
		seen[tag] = true
	}
}

// FuzzParseCursor: any `before` value is either refused with ErrBadCursor
// or decodes to a cursor this server could have made (UTC, 1970..9999)
// that encodes back to the same text, so a client can neither crash the
// list nor reach a position the API never handed out.
func FuzzParseCursor(f *testing.F) {
	valid := Cursor{RecordedAt: testNow, ID: uuid.MustParse("3028124b-52c5-4d39-8c4e-1e1b8c6f1a2b")}.String()
	for _, s := range []string{
		valid, "", "x", "AAAA", valid + "A", valid[:len(valid)-1], valid + "==", valid + "\n",
		Cursor{}.String(), Cursor{RecordedAt: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)}.String(),
		strings.Repeat("_", 32), strings.Repeat("-", 32), "////////////////////////////////",
	} {
		f.Add(s)
	}
	// base64 decoding skips line breaks; nothing else may differ.
	unwrap := strings.NewReplacer("\r", "", "\n", "")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("ParseCursor(%q): %v, want ErrBadCursor", s, err)
			}
			return
		}
		if c.RecordedAt.Location() != time.UTC || c.RecordedAt.Before(time.Unix(0, 0)) || c.RecordedAt.Year() > 9999 {
			t.Fatalf("ParseCursor(%q) accepted recorded_at %v", s, c.RecordedAt)
		}
		if enc := c.String(); enc != unwrap.Replace(s) {
			t.Fatalf("ParseCursor(%q) encodes back as %q", s, enc)
		}
		again, err := ParseCursor(c.String())
		if err != nil || !again.RecordedAt.Equal(c.RecordedAt) || again.ID != c.ID {
			t.Fatalf("cursor %q does not round-trip: %+v, %v", s, again, err)
		}
	})
}

// FuzzParseSyncCursor: no input panics; whatever decodes was signed for this
// user with this key and encodes back to itself; nothing else decodes.
func FuzzParseSyncCursor(f *testing.F) {
	user := uuid.MustParse("3028124b-0000-4000-8000-000000000001")
	now := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	key := []byte("0123456789abcdef0123456789abcdef")
	f.Add(SyncCursor{Seq: 3, ID: user, Issued: now}.Encode(key, user))
	f.Add(SyncCursor{Seq: 0, Issued: now}.Encode(key, uuid.New()))
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseSyncCursor(s, [][]byte{key}, user, now, DefaultTombstoneRetention)
		if err != nil {
			if !errors.Is(err, ErrBadSyncCursor) && !errors.Is(err, ErrSyncCursorExpired) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if got := c.Encode(key, user); got != s {
			t.Fatalf("%q decoded to %+v, which encodes to %q", s, c, got)
		}
	})
}

// FuzzParseConditions: no input panics, and every tag accepted is quoted
// RFC 9110 etagc.
func FuzzParseConditions(f *testing.F) {
	for _, s := range []string{`"1"`, `W/"2", "3"`, `*`, `"a`, ``, `,,"x",`} {
		f.Add(s, "")
	}
	f.Add(`"1"`, `W/"2"`)
	f.Fuzz(func(t *testing.T, a, b string) {
		vs := []string{a}
		if b != "" {
			vs = append(vs, b)
		}
		c, err := ParseConditions(vs)
		if err != nil {
			if !errors.Is(err, ErrBadETag) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !c.Present || (c.Any && len(c.Tags) > 0) || (!c.Any && len(c.Tags) == 0) {
			t.Fatalf("%q: %+v", vs, c)
		}
		for _, tag := range c.Tags {
			o := tag.Opaque
			if len(o) < 2 || o[0] != '"' || o[len(o)-1] != '"' || strings.ContainsAny(o[1:len(o)-1], "\" \t\x7f") {
				t.Fatalf("%q: tag %q", vs, o)
			}
		}
	})
}
