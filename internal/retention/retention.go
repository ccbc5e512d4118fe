// Package retention deletes the rows SOUL no longer needs, so that what the
// README's "Privacy" section promises about how long data is kept holds:
// sessions that expired, or ended more than auth.EndedKept ago (until then
// the user's other devices list them as ended), one-time codes past their expiry
// (each names a phone number, often of someone who never finished signing
// in), Idempotency-Key records older than a day, and the tombstones of
// deleted moods older than the tombstone retention (SYNC_TOMBSTONE_DAYS).
//
// Each table is swept in small batches, each its own statement under its
// own timeout, so a large backlog never holds long locks or one long
// transaction. Every statement repeats its condition on the rows it
// deletes: a row renewed between the batch's selection and its deletion
// (a refreshed session, a replaced code) no longer matches and is kept.
// Replicas may sweep at the same time; deleting twice is harmless.
package retention

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/mood"
)

// What each sweep deletes, named as in metrics and logs.
const (
	Sessions        = "sessions"
	OTPChallenges   = "otp_challenges"
	IdempotencyKeys = "idempotency_keys"
	MoodTombstones  = "mood_tombstones"
)

// Kinds lists every kind of row a sweep deletes, in sweep order.
var Kinds = []string{Sessions, OTPChallenges, IdempotencyKeys, MoodTombstones}

// Defaults of Options.
const (
	DefaultBatch        = 1000
	DefaultStmtTimeout  = 10 * time.Second
	DefaultMaxPerSweep  = 100_000
	defaultIdempotentTT = mood.IdempotencyTTL
)

// Options tune a sweep; the zero value takes the defaults.
type Options struct {
	// Batch is the most rows one statement deletes.
	Batch int
	// StmtTimeout bounds each statement.
	StmtTimeout time.Duration
	// MaxPerSweep is the most rows of one kind one sweep deletes, so a
	// huge backlog is worked off over several sweeps.
	MaxPerSweep int
	// TombstoneRetention is how long a deleted mood's tombstone is kept
	// for the change feed (SYNC_TOMBSTONE_DAYS).
	TombstoneRetention time.Duration
}

func (o Options) withDefaults() Options {
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.StmtTimeout <= 0 {
		o.StmtTimeout = DefaultStmtTimeout
	}
	if o.MaxPerSweep <= 0 {
		o.MaxPerSweep = DefaultMaxPerSweep
	}
	if o.TombstoneRetention <= 0 {
		o.TombstoneRetention = mood.DefaultTombstoneRetention
	}
	return o
}

// Counts is how many rows of each kind a sweep deleted.
type Counts map[string]int64

// Total is the sum over every kind.
func (c Counts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// Sweep deletes, as of now: open sessions past expires_at, and sessions
// revoked auth.EndedKept ago or longer (an ended session is listed for
// that while, whatever its expiry); one-time
// codes past expires_at; Idempotency-Key records older than
// mood.IdempotencyTTL. It returns what it deleted, also when it stops
// early on an error (a cancelled ctx, a statement timeout).
func Sweep(ctx context.Context, db bun.IDB, now time.Time, opts Options) (Counts, error) {
	opts = opts.withDefaults()
	now = now.UTC().Truncate(time.Microsecond)
	dialect := db.Dialect().Name().String()
	counts := make(Counts, len(Kinds))
	for _, kind := range Kinds {
		if kind == MoodTombstones {
			// Before any tombstone goes, each user's purged_seq rises to
			// the highest number about to be deleted, so a feed cursor
			// below it is answered "expired" rather than silently missing
			// the deletion (mood.Store.Changes reads it after the feed).
			cutoff := now.Add(-opts.TombstoneRetention)
			if _, err := exec(ctx, db, opts.StmtTimeout, `UPDATE mood_sync SET purged_seq = (
				SELECT max(t.change_seq) FROM mood_tombstones t WHERE t.user_id = mood_sync.user_id AND t.deleted_at <= ?)
				WHERE purged_seq < (
				SELECT max(t.change_seq) FROM mood_tombstones t WHERE t.user_id = mood_sync.user_id AND t.deleted_at <= ?)`,
				[]any{cutoff, cutoff}); err != nil {
				return counts, fmt.Errorf("retention: sweep %s (%s): raising purged_seq: %w", kind, dialect, err)
			}
		}
		for counts[kind] < int64(opts.MaxPerSweep) {
			limit := min(int64(opts.Batch), int64(opts.MaxPerSweep)-counts[kind])
			stmt, args := statement(kind, now, limit, opts)
			n, err := exec(ctx, db, opts.StmtTimeout, stmt, args)
			counts[kind] += n
			if err != nil {
				return counts, fmt.Errorf("retention: sweep %s (%s): %w", kind, dialect, err)
			}
			if n < limit {
				break
			}
		}
	}
	return counts, nil
}

// statement is one batch's DELETE of kind. The inner SELECT picks at most
// batch rows (through the expiry indexes); the outer condition is checked
// again on each row as it is deleted.
func statement(kind string, now time.Time, batch int64, opts Options) (string, []any) {
	switch kind {
	case Sessions:
		ended := now.Add(-auth.EndedKept)
		return `DELETE FROM sessions WHERE ((revoked_at IS NULL AND expires_at <= ?) OR revoked_at <= ?) AND id IN (
			SELECT id FROM sessions WHERE (revoked_at IS NULL AND expires_at <= ?) OR revoked_at <= ? LIMIT ?)`,
			[]any{now, ended, now, ended, batch}
	case OTPChallenges:
		return `DELETE FROM otp_challenges WHERE expires_at <= ? AND phone IN (
			SELECT phone FROM otp_challenges WHERE expires_at <= ? LIMIT ?)`,
			[]any{now, now, batch}
	case IdempotencyKeys:
		cutoff := now.Add(-defaultIdempotentTT)
		return `DELETE FROM idempotency_keys WHERE created_at <= ? AND (user_id, "key") IN (
			SELECT user_id, "key" FROM idempotency_keys WHERE created_at <= ? LIMIT ?)`,
			[]any{cutoff, cutoff, batch}
	case MoodTombstones:
		cutoff := now.Add(-opts.TombstoneRetention)
		return `DELETE FROM mood_tombstones WHERE deleted_at <= ? AND (user_id, id) IN (
			SELECT user_id, id FROM mood_tombstones WHERE deleted_at <= ? LIMIT ?)`,
			[]any{cutoff, cutoff, batch}
	}
	panic("retention: unknown kind " + kind)
}

func exec(ctx context.Context, db bun.IDB, timeout time.Duration, stmt string, args []any) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := db.NewRaw(stmt, args...).Exec(ctx)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
