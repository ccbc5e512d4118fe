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
// began, was last used and ends. No token material (hashes, sealed
// tokens) ever leaves the database.
type SessionInfo struct {
	ID         uuid.UUID `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// Export reads everything an account export holds about userID: head gets
// the account and its open sessions, then moods gets every mood, newest
// recorded_at first, batch at a time (the slice is reused; see mood.Walk).
// It answers ErrNotFound when there is no such account; an error of head
// or moods stops the export and is returned as it is.
//
// Every query runs in one read-only transaction with one snapshot, so a
// mood written or deleted while a long download is under way neither
// appears nor goes missing halfway through: the document is the account
// as it was at the first read. The transaction stays open while head and
// moods run, and they write to the client: on SQLite, whose handle has
// one connection, every other query of the process waits meanwhile, so a
// client that stops reading stalls the instance until the server's write
// timeout ends its download.
func (s *Service) Export(ctx context.Context, userID uuid.UUID, batch int,
	head func(User, []SessionInfo) error, moods func([]mood.Mood) error,
) error {
	tx, err := s.db.BeginTx(ctx, snapshotOptions(s.db))
	if err != nil {
		return fmt.Errorf("auth: export: beginning the snapshot: %w", err)
	}
	// Nothing to commit: rolling back ends a read-only transaction, and
	// an error in ending it cannot spoil what was read.
	defer func() { _ = tx.Rollback() }()

	var u User
	if err := tx.NewSelect().Model(&u).Where("id = ?", userID).Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return fmt.Errorf("auth: export: reading the account: %w", err)
	}
	sessions, err := activeSessions(ctx, tx, userID, s.now())
	if err != nil {
		return err
	}
	if err := head(u, sessions); err != nil {
		return err
	}
	return mood.Walk(ctx, tx, userID, batch, moods)
}

// snapshotOptions are the options of a read-only transaction that reads
// one snapshot from its first query to its end.
func snapshotOptions(db *bun.DB) *sql.TxOptions {
	if db.Dialect().Name() == dialect.PG {
		// Postgres's default, READ COMMITTED, takes a new snapshot for
		// every statement; REPEATABLE READ keeps the first one.
		return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	// SQLite's transactions are serializable, and in WAL mode a read
	// transaction keeps the snapshot of its first read while writers go
	// on. The modernc driver ignores the isolation level, so none is
	// asked for; ReadOnly matters, because it makes the driver BEGIN a
	// deferred transaction where the DSN's _txlock=immediate would take
	// the write lock for the whole download.
	return &sql.TxOptions{ReadOnly: true}
}

// activeSessions returns the open sessions of userID at now (not revoked,
// not expired), oldest first.
func activeSessions(ctx context.Context, db bun.IDB, userID uuid.UUID, now time.Time) ([]SessionInfo, error) {
	var rows []Session
	err := db.NewSelect().Model(&rows).
		Column("id", "created_at", "last_used_at", "expires_at").
		Where("user_id = ?", userID).
		Where("revoked_at IS NULL").
		Where("expires_at > ?", dbTime(now)).
		OrderExpr("created_at, id").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: export: reading the sessions: %w", err)
	}
	out := make([]SessionInfo, len(rows))
	for i, r := range rows {
		out[i] = SessionInfo{ID: r.ID, CreatedAt: r.CreatedAt.UTC(), LastUsedAt: r.LastUsedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC()}
	}
	return out, nil
}
