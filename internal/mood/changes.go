package mood

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/tracing"
)

// Change is one entry of the change feed: a mood as it is now (created or
// updated since the cursor), or the tombstone of a deleted one.
type Change struct {
	// Mood is set for a created or updated mood.
	Mood *Mood
	// Deleted, with ID and DeletedAt, is a tombstone.
	Deleted   bool
	ID        uuid.UUID
	DeletedAt time.Time
	Seq       int64
}

// ChangesPage is a page of the feed.
type ChangesPage struct {
	Changes []Change
	// Next is the position after the page: the cursor of its last change,
	// or the one the page started from when it is empty.
	Next SyncCursor
	// More: another page follows at once.
	More bool
}

// changeRow is a row of the feed's UNION: a mood's columns, or NULLs and
// deleted_at for a tombstone.
type changeRow struct {
	ID         uuid.UUID  `bun:"id,type:uuid"`
	ChangeSeq  int64      `bun:"change_seq"`
	Deleted    int        `bun:"deleted"`
	DeletedAt  *time.Time `bun:"deleted_at"`
	Score      *int       `bun:"score"`
	Label      *string    `bun:"label"`
	Note       *string    `bun:"note"`
	Tags       []string   `bun:"tags"`
	RecordedAt *time.Time `bun:"recorded_at"`
	CreatedAt  *time.Time `bun:"created_at"`
	UpdatedAt  *time.Time `bun:"updated_at"`
	Version    *int64     `bun:"version"`
}

// changesSQL is the feed: the moods and the tombstones of a user after
// (seq, id), in (change_seq, id) order. It is one statement, so one
// snapshot on Postgres: two statements could each miss a change the other
// saw committed between them. Each side reads its (user_id, change_seq,
// id) index as one range, limit+1 rows at most. The NULLs are typed for
// Postgres, which types a UNION's columns from them; SQLite's CAST of NULL
// is NULL whatever the type's name.
const changesSQL = `SELECT * FROM (
	SELECT id, change_seq, 0 AS deleted, CAST(NULL AS timestamptz) AS deleted_at, score, label, note, tags,
		recorded_at, created_at, updated_at, version
	FROM moods WHERE user_id = ? AND (change_seq, id) > (?, ?)
	ORDER BY change_seq, id LIMIT ?) AS m
UNION ALL
SELECT * FROM (
	SELECT id, change_seq, 1 AS deleted, deleted_at, CAST(NULL AS smallint), CAST(NULL AS text),
		CAST(NULL AS text), CAST(NULL AS jsonb), CAST(NULL AS timestamptz), CAST(NULL AS timestamptz),
		CAST(NULL AS timestamptz), CAST(NULL AS bigint)
	FROM mood_tombstones WHERE user_id = ? AND (change_seq, id) > (?, ?)
	ORDER BY change_seq, id LIMIT ?) AS t
ORDER BY change_seq, id LIMIT ?`

// Changes returns the page of userID's change feed after since (nil: from
// the beginning, every mood there is), at most limit changes. Moods
// written before the feed existed have number 0 and come first. A since
// below the highest tombstone number the retention sweep deleted is
// ErrSyncCursorExpired: a deletion after it may be gone.
func (s *Store) Changes(ctx context.Context, userID uuid.UUID, since *SyncCursor, limit int) (ChangesPage, error) {
	if limit < 1 || limit > MaxLimit {
		limit = DefaultLimit
	}
	// The beginning is (0, the nil id): before every mood, those of number
	// 0 included, since no mood has the nil id.
	after := SyncCursor{}
	if since != nil {
		after = *since
	}
	var (
		rows   []changeRow
		purged int64
	)
	err := database.Native(ctx, s.db, func(c *pgx.Conn) error {
		return changesNative(ctx, c, &rows, &purged, userID, after, since != nil, limit)
	})
	if errors.Is(err, database.ErrNotNative) {
		err = s.changesBun(ctx, &rows, &purged, userID, after, since != nil, limit)
	}
	if err != nil {
		return ChangesPage{}, err
	}
	if since != nil && since.Seq < purged {
		return ChangesPage{}, ErrSyncCursorExpired
	}
	page := ChangesPage{Next: SyncCursor{Seq: after.Seq, ID: after.ID}}
	if len(rows) > limit {
		rows, page.More = rows[:limit], true
	}
	page.Changes = make([]Change, len(rows))
	for i, r := range rows {
		c := Change{ID: r.ID, Seq: r.ChangeSeq}
		if r.Deleted != 0 {
			c.Deleted = true
			if r.DeletedAt != nil {
				c.DeletedAt = r.DeletedAt.UTC()
			}
		} else {
			m := Mood{ID: r.ID, UserID: userID, Label: r.Label, Note: r.Note, Tags: r.Tags, ChangeSeq: r.ChangeSeq}
			if r.Score == nil || r.RecordedAt == nil || r.CreatedAt == nil || r.UpdatedAt == nil || r.Version == nil {
				return ChangesPage{}, fmt.Errorf("mood: change feed row of mood %s has NULLs", r.ID)
			}
			m.Score, m.Version = *r.Score, *r.Version
			m.RecordedAt, m.CreatedAt, m.UpdatedAt = *r.RecordedAt, *r.CreatedAt, *r.UpdatedAt
			m.normalize()
			c.Mood = &m
		}
		page.Changes[i] = c
		page.Next = SyncCursor{Seq: r.ChangeSeq, ID: r.ID}
	}
	return page, nil
}

// changesBun reads the feed's rows and, with checkPurged, the user's
// purged_seq, through bun (SQLite). The sweep raises purged_seq before it
// deletes, so reading it after the feed sees any sweep whose deletions
// the feed already missed.
func (s *Store) changesBun(ctx context.Context, rows *[]changeRow, purged *int64, userID uuid.UUID, after SyncCursor, checkPurged bool, limit int) error {
	err := s.db.NewRaw(changesSQL,
		userID, after.Seq, after.ID, limit+1,
		userID, after.Seq, after.ID, limit+1,
		limit+1).Scan(ctx, rows)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("mood: reading the change feed: %w", err)
	}
	if !checkPurged {
		return nil
	}
	err = s.db.NewRaw("SELECT purged_seq FROM mood_sync WHERE user_id = ?", userID).Scan(ctx, purged)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("mood: reading the feed's swept number: %w", err)
	}
	return nil
}

// changesNativeSQL is changesSQL with Postgres's placeholders, prepared
// once per connection (database.StatementMode) with binary results, as
// the list is: bun's text protocol had Postgres parse and plan the UNION
// on every request.
var changesNativeSQL = func() string {
	var b strings.Builder
	n := 0
	for _, r := range changesSQL {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}()

// changesNative is changesBun on Postgres through pgx, on one connection,
// the feed first.
func changesNative(ctx context.Context, c *pgx.Conn, dst *[]changeRow, purged *int64, userID uuid.UUID, after SyncCursor, checkPurged bool, limit int) (err error) {
	ctx, end := tracing.Query(ctx, "postgresql", "SELECT", "moods")
	defer func() { end(err) }()
	uid, aid, n := [16]byte(userID), [16]byte(after.ID), int64(limit+1)
	rows, err := c.Query(ctx, changesNativeSQL, database.StatementMode(c), uid, after.Seq, aid, n, uid, after.Seq, aid, n, n)
	if err != nil {
		return fmt.Errorf("mood: reading the change feed: %w", err)
	}
	for rows.Next() {
		var (
			r       changeRow
			deleted int32
			tags    []byte
		)
		if err := rows.Scan((*[16]byte)(&r.ID), &r.ChangeSeq, &deleted, &r.DeletedAt, &r.Score, &r.Label, &r.Note,
			&tags, &r.RecordedAt, &r.CreatedAt, &r.UpdatedAt, &r.Version); err != nil {
			rows.Close()
			return fmt.Errorf("mood: reading the change feed: %w", err)
		}
		r.Deleted = int(deleted)
		if tags != nil {
			if r.Tags, err = decodeTags(tags); err != nil {
				rows.Close()
				return fmt.Errorf("mood: change feed tags: %w", err)
			}
		}
		*dst = append(*dst, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mood: reading the change feed: %w", err)
	}
	if !checkPurged {
		return nil
	}
	err = c.QueryRow(ctx, "SELECT purged_seq FROM mood_sync WHERE user_id = $1", database.StatementMode(c), uid).Scan(purged)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("mood: reading the feed's swept number: %w", err)
	}
	return nil
}
