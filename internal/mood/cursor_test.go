package mood

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestCursorRoundTrip(t *testing.T) {
	c := Cursor{RecordedAt: time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC), ID: uuid.New()}
	got, err := ParseCursor(c.String())
	if err != nil {
		t.Fatal(err)
	}
	if !got.RecordedAt.Equal(c.RecordedAt) || got.ID != c.ID {
		t.Errorf("round trip: %+v, want %+v", got, c)
	}
}

func TestParseCursorRefuses(t *testing.T) {
	far := Cursor{RecordedAt: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)}.String()
	for _, s := range []string{"", "x", "!!!!", "AAAA", Cursor{}.String() + "A", far[:len(far)-1] + "?"} {
		if _, err := ParseCursor(s); err == nil {
			t.Errorf("ParseCursor(%q) accepted", s)
		}
	}
	// Negative or beyond year 9999: not a cursor this server made.
	for _, micros := range []int64{-1, 1 << 62} {
		var b [cursorLen]byte
		for i := 0; i < 8; i++ {
			b[i] = byte(uint64(micros) >> (56 - 8*i))
		}
		if _, err := ParseCursor(base64.RawURLEncoding.EncodeToString(b[:])); err == nil {
			t.Errorf("cursor of %d microseconds accepted", micros)
		}
	}
}
