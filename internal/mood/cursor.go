package mood

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/google/uuid"
)

// Cursor is a position in a user's newest-first list: the (recorded_at, id)
// of the last mood of a page. Clients treat it as opaque.
type Cursor struct {
	RecordedAt time.Time
	ID         uuid.UUID
}

// ErrBadCursor is a `before` value this server did not hand out.
var ErrBadCursor = errors.New("mood: malformed cursor")

const cursorLen = 8 + 16 // unix microseconds, big-endian; the id

// CursorOf returns the cursor just past m.
func CursorOf(m Mood) Cursor { return Cursor{RecordedAt: m.RecordedAt, ID: m.ID} }

// String encodes c as URL-safe base64, so it goes into a query unescaped.
func (c Cursor) String() string {
	var b [cursorLen]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.RecordedAt.UnixMicro()))
	copy(b[8:], c.ID[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseCursor decodes a cursor made by String.
func ParseCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != cursorLen {
		return Cursor{}, ErrBadCursor
	}
	micros := int64(binary.BigEndian.Uint64(b[:8]))
	if micros < 0 {
		return Cursor{}, ErrBadCursor
	}
	t := time.UnixMicro(micros).UTC()
	if t.Year() > 9999 {
		return Cursor{}, ErrBadCursor
	}
	var id uuid.UUID
	copy(id[:], b[8:])
	return Cursor{RecordedAt: t, ID: id}, nil
}
