package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/soulapp/soul/internal/mood"
)

// SessionInfo is what an account's owner may see of a session: when it
// began, was last used and ends, the platform and app version its app
// named, and, for one that ended (listed for EndedKept), when and why. No
// token material (hashes, sealed tokens) ever leaves the database.
type SessionInfo struct {
	ID          uuid.UUID  `json:"id"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  time.Time  `json:"last_used_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	Platform    *string    `json:"platform"`
	AppVersion  *string    `json:"app_version"`
	EndedAt     *time.Time `json:"ended_at"`
	EndedReason *string    `json:"ended_reason"`
}

// Export reads everything an account export holds about userID: head gets
// the account and its sessions (open, or ended within EndedKept), then
// moods gets every mood, newest recorded_at first, batch at a time (the
// slice is reused; see mood.Walk), then deleted, when not nil, the
// tombstones of deleted moods the change feed still keeps.
// It answers ErrNotFound when there is no such account; an error of head
// or moods stops the export and is returned as it is.
//
// On Postgres every query runs in one read-only REPEATABLE READ
// transaction, so a mood written or deleted while a long download is
// under way neither appears nor goes missing halfway through: the
// document is the account as it was at the first read.
//
// On SQLite (the embedded, single-instance mode) there is no snapshot:
// its handle has one connection, and a transaction held open while the
// client reads would make every other request of the process wait for
// the slowest download. Each batch is its own query instead, and the
// connection is free between them.
func (s *Service) Export(ctx context.Context, userID uuid.UUID, batch int,
	head func(User, []SessionInfo) error, moods func([]mood.Mood) error,
	deleted func([]mood.Tombstone) error,
) error {
	var db bun.IDB = s.db
	if s.db.Dialect().Name() == dialect.PG {
		// READ COMMITTED, the default, takes a new snapshot for every
		// statement; REPEATABLE READ keeps the first one.
		tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			return fmt.Errorf("auth: export: beginning the snapshot: %w", err)
		}
		// Nothing to commit: rolling back ends a read-only transaction,
		// and an error in ending it cannot spoil what was read.
		defer func() { _ = tx.Rollback() }()
		db = tx
	}

	var u User
	if err := db.NewSelect().Model(&u).Where("id = ?", userID).Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return fmt.Errorf("auth: export: reading the account: %w", err)
	}
	sessions, err := exportSessions(ctx, db, userID, s.now())
	if err != nil {
		return err
	}
	if err := head(u, sessions); err != nil {
		return err
	}
	if err := mood.Walk(ctx, db, userID, batch, moods); err != nil || deleted == nil {
		return err
	}
	return mood.WalkTombstones(ctx, db, userID, batch, deleted)
}

// exportSessions returns the sessions of userID its owner is shown at now
// (open, or ended within EndedKept), oldest first.
func exportSessions(ctx context.Context, db bun.IDB, userID uuid.UUID, now time.Time) ([]SessionInfo, error) {
	rows, err := listedSessions(ctx, db, userID, now)
	if err != nil {
		return nil, fmt.Errorf("auth: export: %w", err)
	}
	out := make([]SessionInfo, len(rows))
	for i, r := range rows {
		out[i] = SessionInfo{
			ID: r.ID, CreatedAt: r.CreatedAt.UTC(), LastUsedAt: r.LastUsedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
			Platform: r.Platform, AppVersion: r.AppVersion, EndedReason: r.EndedReason,
		}
		if r.RevokedAt != nil {
			at := r.RevokedAt.UTC()
			out[i].EndedAt = &at
		}
	}
	return out, nil
}
