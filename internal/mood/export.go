package mood

import (
	"context"

	"github.com/google/uuid"
)

// Walk hands fn every mood of userID, newest recorded_at first, batch
// moods at a time, for an export that must not hold them all in memory.
// Each batch is one keyset query on moods_user_recorded_idx that has
// finished before fn runs: no read stays open while the caller writes to a
// slow client, and SQLite's single connection is free between batches.
// The slice is reused: fn must not keep it. Moods created or deleted
// during the walk may or may not be seen; none is seen twice.
func (s *Store) Walk(ctx context.Context, userID uuid.UUID, batch int, fn func([]Mood) error) error {
	if batch < 1 {
		batch = MaxLimit
	}
	moods := make([]Mood, 0, batch)
	var after *Cursor
	for {
		moods = moods[:0]
		q := s.db.NewSelect().Model(&moods).Where("user_id = ?", userID)
		if after != nil {
			q = q.Where("(recorded_at, id) < (?, ?)", dbTime(after.RecordedAt), after.ID)
		}
		if err := q.OrderExpr("recorded_at DESC, id DESC").Limit(int64(batch)).Scan(ctx); err != nil {
			return err
		}
		for i := range moods {
			moods[i].normalize()
		}
		if len(moods) > 0 {
			if err := fn(moods); err != nil {
				return err
			}
		}
		if len(moods) < batch {
			return nil
		}
		c := CursorOf(moods[len(moods)-1])
		after = &c
	}
}
