package mood

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/google/uuid"
)

// SyncCursor is a position in a user's change feed: the (change_seq, id)
// of the last change a page held, and when the page was answered. It
// travels signed: a client cannot forge one, nor use another user's.
type SyncCursor struct {
	Seq    int64
	ID     uuid.UUID
	Issued time.Time
}

// The sync cursor's errors.
var (
	// ErrBadSyncCursor: not a cursor this server handed to this user.
	ErrBadSyncCursor = errors.New("mood: malformed or foreign sync cursor")
	// ErrSyncCursorExpired: the cursor is older than the tombstones are
	// kept, or deletions after it were swept; the client downloads again.
	ErrSyncCursorExpired = errors.New("mood: sync cursor expired")
)

// LabelSyncCursor names the key that signs sync cursors, derived from
// SECRET_KEY.
const LabelSyncCursor = "soul mood sync cursor v1"

const (
	syncCursorVersion = 1
	syncCursorBody    = 1 + 8 + 16 + 8 // version, seq, id, issued (unix seconds)
	syncCursorMAC     = 16             // HMAC-SHA256, truncated: 128 bits
	syncCursorLen     = syncCursorBody + syncCursorMAC
)

// Encode signs c for userID with key, as URL-safe base64 (it goes into a
// query unescaped).
func (c SyncCursor) Encode(key []byte, userID uuid.UUID) string {
	var b [syncCursorLen]byte
	b[0] = syncCursorVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(c.Seq))
	copy(b[9:25], c.ID[:])
	binary.BigEndian.PutUint64(b[25:33], uint64(c.Issued.Unix()))
	copy(b[syncCursorBody:], syncMAC(key, userID, b[:syncCursorBody]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// syncMAC binds the cursor to its user: the user's id is signed with it,
// so a cursor presented by anyone else fails the check.
func syncMAC(key []byte, userID uuid.UUID, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(userID[:])
	h.Write(body)
	return h.Sum(nil)[:syncCursorMAC]
}

// ParseSyncCursor decodes a cursor made by Encode for userID with one of
// keys (the current key and, while it is rotated out, the previous). It
// answers ErrBadSyncCursor for anything else, ErrSyncCursorExpired for a
// cursor issued more than keep before now.
func ParseSyncCursor(s string, keys [][]byte, userID uuid.UUID, now time.Time, keep time.Duration) (SyncCursor, error) {
	if len(s) != base64.RawURLEncoding.EncodedLen(syncCursorLen) {
		return SyncCursor{}, ErrBadSyncCursor
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != syncCursorLen || b[0] != syncCursorVersion {
		return SyncCursor{}, ErrBadSyncCursor
	}
	ok := false
	for _, k := range keys {
		if hmac.Equal(syncMAC(k, userID, b[:syncCursorBody]), b[syncCursorBody:]) {
			ok = true
			break
		}
	}
	if !ok {
		return SyncCursor{}, ErrBadSyncCursor
	}
	seq := int64(binary.BigEndian.Uint64(b[1:9]))
	issued := int64(binary.BigEndian.Uint64(b[25:33]))
	if seq < 0 || issued < 0 {
		return SyncCursor{}, ErrBadSyncCursor
	}
	var id uuid.UUID
	copy(id[:], b[9:25])
	c := SyncCursor{Seq: seq, ID: id, Issued: time.Unix(issued, 0).UTC()}
	if c.Issued.Before(now.Add(-keep)) {
		return SyncCursor{}, ErrSyncCursorExpired
	}
	return c, nil
}
