package mood

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var (
	testKey  = []byte("0123456789abcdef0123456789abcdef")
	otherKey = []byte("fedcba9876543210fedcba9876543210")
)

func TestSyncCursorRoundTrip(t *testing.T) {
	user := uuid.New()
	now := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	c := SyncCursor{Seq: 42, ID: uuid.New(), Issued: now}
	s := c.Encode(testKey, user)
	got, err := ParseSyncCursor(s, [][]byte{otherKey, testKey}, user, now, DefaultTombstoneRetention)
	if err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Errorf("round trip %+v, want %+v", got, c)
	}
}

// A cursor of another user, another key, altered in any byte, or cut short
// is not one this server handed out; an old one has expired.
func TestParseSyncCursorRefuses(t *testing.T) {
	user := uuid.New()
	now := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	good := SyncCursor{Seq: 7, ID: uuid.New(), Issued: now}.Encode(testKey, user)
	keys := [][]byte{testKey}
	bad := []string{"", "x", good[:len(good)-1], good + "A", strings.Repeat("A", len(good)),
		SyncCursor{Seq: 7, Issued: now}.Encode(otherKey, user)}
	for i := range good {
		b := []byte(good)
		b[i] ^= 1
		bad = append(bad, string(b))
	}
	for _, s := range bad {
		if _, err := ParseSyncCursor(s, keys, user, now, DefaultTombstoneRetention); !errors.Is(err, ErrBadSyncCursor) {
			t.Errorf("ParseSyncCursor(%q) = %v, want ErrBadSyncCursor", s, err)
		}
	}
	if _, err := ParseSyncCursor(good, keys, uuid.New(), now, DefaultTombstoneRetention); !errors.Is(err, ErrBadSyncCursor) {
		t.Errorf("another user's cursor: %v", err)
	}
	old := SyncCursor{Seq: 7, Issued: now.Add(-DefaultTombstoneRetention - time.Second)}.Encode(testKey, user)
	if _, err := ParseSyncCursor(old, keys, user, now, DefaultTombstoneRetention); !errors.Is(err, ErrSyncCursorExpired) {
		t.Errorf("a cursor older than the tombstones: %v, want ErrSyncCursorExpired", err)
	}
}

func TestParseConditions(t *testing.T) {
	for _, tc := range []struct {
		header       string
		strong, weak bool // against `"3"`
	}{
		{`"3"`, true, true},
		{`"2", "3"`, true, true},
		{`W/"3"`, false, true},
		{`*`, true, true},
		{`"4"`, false, false},
		{`"3x"`, false, false},
		{`"", "3"`, true, true},
		{`"3-gzip"`, true, false}, // Caddy's encode handler strips it from If-None-Match itself
		{`"3-zstd"`, true, false},
		{`"3-deflate"`, false, false},
	} {
		c, err := ParseConditions([]string{tc.header})
		if err != nil {
			t.Errorf("%s: %v", tc.header, err)
			continue
		}
		if c.MatchStrong(`"3"`) != tc.strong || c.MatchWeak(`"3"`) != tc.weak {
			t.Errorf("%s: strong %v weak %v, want %v %v", tc.header, c.MatchStrong(`"3"`), c.MatchWeak(`"3"`), tc.strong, tc.weak)
		}
	}
	for _, h := range []string{"3", `"3`, `3"`, `W/3`, `"a"b"`, ",", " ", `"a b"`, `w/"3"`, `*, "3"`, strings.Repeat(`"1",`, 300)} {
		if _, err := ParseConditions([]string{h}); !errors.Is(err, ErrBadETag) {
			t.Errorf("ParseConditions(%q) = %v, want ErrBadETag", h, err)
		}
	}
	if c, err := ParseConditions(nil); err != nil || c.Present || !c.MatchStrong(`"1"`) || c.MatchWeak(`"1"`) {
		t.Errorf("no header: %+v %v", c, err)
	}
}
