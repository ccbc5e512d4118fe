package mood

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Walk hands fn every mood of userID, newest recorded_at first, batch
// moods at a time, for an export that must not hold them all in memory.
// Each batch is one keyset query on moods_user_recorded_idx that has
// finished before fn runs, so fn may write to a slow client. The slice is
// reused: fn must not keep it. None is seen twice. On a transaction with
// one snapshot (auth's Export) the walk sees exactly the moods of that
// snapshot; on a *bun.DB each batch reads the latest data, and moods
// created or deleted during the walk may or may not be seen.
func Walk(ctx context.Context, db bun.IDB, userID uuid.UUID, batch int, fn func([]Mood) error) error {
	if batch < 1 {
		batch = MaxLimit
	}
	moods := make([]Mood, 0, batch)
	var after *Cursor
	for {
		moods = moods[:0]
		q := db.NewSelect().Model(&moods).Where("user_id = ?", userID)
		if after != nil {
			q = q.Where("(recorded_at, id) < (?, ?)", dbTime(after.RecordedAt), after.ID)
		}
		if err := q.OrderExpr("recorded_at DESC, id DESC").Limit(int64(batch)).Scan(ctx); err != nil {
			return fmt.Errorf("mood: reading a batch of moods: %w", err)
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

// WalkTombstones hands fn the tombstones of userID's deleted moods (kept
// for the change feed, so part of what an export shows), oldest deletion
// first, batch at a time, as Walk does: each batch is one keyset query on
// (user_id, change_seq, id) finished before fn runs; the slice is reused.
func WalkTombstones(ctx context.Context, db bun.IDB, userID uuid.UUID, batch int, fn func([]Tombstone) error) error {
	if batch < 1 {
		batch = MaxLimit
	}
	ts := make([]Tombstone, 0, batch)
	after := int64(-1)
	for {
		ts = ts[:0]
		// A user's change numbers are unique, so change_seq alone orders
		// the tombstones.
		if err := db.NewSelect().Model(&ts).Where("user_id = ?", userID).Where("change_seq > ?", after).
			OrderExpr("change_seq").Limit(int64(batch)).Scan(ctx); err != nil {
			return fmt.Errorf("mood: reading a batch of tombstones: %w", err)
		}
		for i := range ts {
			ts[i].DeletedAt = ts[i].DeletedAt.UTC()
		}
		if len(ts) > 0 {
			if err := fn(ts); err != nil {
				return err
			}
		}
		if len(ts) < batch {
			return nil
		}
		after = ts[len(ts)-1].ChangeSeq
	}
}
