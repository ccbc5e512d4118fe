// Package mood is the mood journal: the Mood model (it owns the moods,
// idempotency_keys, mood_tombstones and mood_sync tables), the rules a
// mood's fields follow, the opaque cursor of the newest-first list, the
// change feed of offline sync with its signed cursor, entity tags, and
// the queries of the Store. It knows nothing of HTTP or Caddy.
package mood

import (
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// The rules of a mood's fields.
const (
	MinScore     = 1
	MaxScore     = 10
	MaxLabel     = 32   // characters
	MaxNote      = 2000 // characters
	MaxTags      = 10
	MaxTagLength = 24 // characters, after trimming
	// FutureSlack is how far ahead of the server's clock recorded_at may
	// be: phones' clocks drift.
	FutureSlack = 5 * time.Minute
)

// Mood is one journal entry of a user.
type Mood struct {
	bun.BaseModel `bun:"table:moods"`

	ID     uuid.UUID `bun:"id,pk,type:uuid" json:"id"`
	UserID uuid.UUID `bun:"user_id,notnull,type:uuid" json:"-"`
	Score  int       `bun:"score,notnull" json:"score"`
	Label  *string   `bun:"label" json:"label"`
	Note   *string   `bun:"note" json:"note"`
	// Stored as a JSON array on both databases (jsonb, text).
	Tags       []string  `bun:"tags,notnull" json:"tags"`
	RecordedAt time.Time `bun:"recorded_at,notnull" json:"recorded_at"`
	CreatedAt  time.Time `bun:"created_at,notnull" json:"created_at"`
	UpdatedAt  time.Time `bun:"updated_at,notnull" json:"updated_at"`
	// Version counts the mood's writes from 1; its ETag is made of it, so
	// If-Match can refuse a change made against an older copy.
	Version int64 `bun:"version,notnull" json:"version"`
	// ChangeSeq is the mood's place in its user's change feed: the number
	// of the user's write that last touched it (see Changes).
	ChangeSeq int64 `bun:"change_seq,notnull" json:"-"`
}

// Tombstone is a deleted mood as the change feed reports it, kept for the
// tombstone retention (SYNC_TOMBSTONE_DAYS).
type Tombstone struct {
	bun.BaseModel `bun:"table:mood_tombstones"`

	UserID    uuid.UUID `bun:"user_id,pk,type:uuid" json:"-"`
	ID        uuid.UUID `bun:"id,pk,type:uuid" json:"id"`
	ChangeSeq int64     `bun:"change_seq,notnull" json:"-"`
	DeletedAt time.Time `bun:"deleted_at,notnull" json:"deleted_at"`
}

// DefaultTombstoneRetention is how long a deleted mood's tombstone is
// kept, and so how long a client may stay offline and still catch up
// through the change feed.
const DefaultTombstoneRetention = 90 * 24 * time.Hour

// IdempotencyKey remembers the mood a POST with an Idempotency-Key created,
// and a hash of what was asked, for 24 hours.
type IdempotencyKey struct {
	bun.BaseModel `bun:"table:idempotency_keys"`

	UserID      uuid.UUID `bun:"user_id,pk,type:uuid"`
	Key         string    `bun:"key,pk"`
	RequestHash []byte    `bun:"request_hash,notnull"`
	MoodID      uuid.UUID `bun:"mood_id,notnull,type:uuid"`
	CreatedAt   time.Time `bun:"created_at,notnull"`
}

// IdempotencyTTL is how long a key answers with the mood it created.
const IdempotencyTTL = 24 * time.Hour

// dbTime is the form every stored time takes: UTC, to the microsecond both
// databases keep, so what is written reads back equal and compares the
// same way on both.
func dbTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}
