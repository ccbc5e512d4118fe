package retention_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/internal/retention"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/migrations"
)

// now is the instant every sweep below runs at.
var now = time.Date(2026, 11, 23, 12, 0, 0, 500_000_000, time.UTC)

// eachDatabase runs f on a migrated Postgres database and a migrated
// SQLite file.
func eachDatabase(t *testing.T, f func(t *testing.T, db *bun.DB)) {
	for _, kind := range []database.Kind{database.Postgres, database.SQLite} {
		t.Run(string(kind), func(t *testing.T) {
			cfg := database.Config{SQLitePath: filepath.Join(t.TempDir(), "soul.db")}
			if kind == database.Postgres {
				cfg = database.Config{URL: testservices.NewDatabase(t)}
			}
			ctx := context.Background()
			db, _, err := database.Open(ctx, cfg, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			r, err := migrations.New(db)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Up(ctx); err != nil {
				t.Fatal(err)
			}
			f(t, db)
		})
	}
}

func insert(t *testing.T, db *bun.DB, models ...any) {
	t.Helper()
	for _, m := range models {
		if _, err := db.NewInsert().Model(m).Exec(context.Background()); err != nil {
			t.Fatalf("insert %T: %v", m, err)
		}
	}
}

func newUser(t *testing.T, db *bun.DB, phone string) uuid.UUID {
	t.Helper()
	u := &auth.User{ID: uuid.New(), Phone: phone, CreatedAt: now.Add(-48 * time.Hour)}
	insert(t, db, u)
	return u.ID
}

func session(user uuid.UUID, expires time.Time, revoked *time.Time) *auth.Session {
	id := uuid.New()
	return &auth.Session{
		ID: id, UserID: user, TokenHash: id[:],
		CreatedAt: now.Add(-time.Hour), LastUsedAt: now.Add(-time.Hour),
		ExpiresAt: expires, RevokedAt: revoked,
	}
}

func challenge(phone string, expires time.Time) *auth.Challenge {
	return &auth.Challenge{Phone: phone, CodeHash: []byte("hmac"), ExpiresAt: expires, CreatedAt: expires.Add(-5 * time.Minute)}
}

func idempotencyKey(user uuid.UUID, key string, created time.Time) *mood.IdempotencyKey {
	return &mood.IdempotencyKey{UserID: user, Key: key, RequestHash: []byte("h"), MoodID: uuid.New(), CreatedAt: created}
}

func tombstone(user uuid.UUID, seq int64, deleted time.Time) *mood.Tombstone {
	return &mood.Tombstone{UserID: user, ID: uuid.New(), ChangeSeq: seq, DeletedAt: deleted}
}

// column returns the values of one text-convertible column, sorted.
func column(t *testing.T, db *bun.DB, query string) []string {
	t.Helper()
	var out []string
	if err := db.NewRaw(query).Scan(context.Background(), &out); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	slices.Sort(out)
	return out
}

func TestSweepDeletesWhatExpiredAndKeepsTheRest(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *bun.DB) {
		user := newUser(t, db, "+447400123456")
		revokedAt := now.Add(-time.Minute)
		endedLongAgo := now.Add(-auth.EndedKept)
		live := session(user, now.Add(time.Microsecond), nil)
		// Ended a minute ago: still listed to the user's other devices,
		// also once past its expiry.
		ended := session(user, now.Add(time.Hour), &revokedAt)
		endedExpired := session(user, now.Add(-time.Second), &revokedAt)
		insert(t, db,
			live,
			ended,
			endedExpired,
			session(user, now, nil), // expires this instant
			session(user, now.Add(-time.Second), nil), // expired
			session(user, now.Add(time.Hour), &endedLongAgo),
			challenge("+447400000001", now.Add(time.Second)), // live
			challenge("+447400000002", now),
			challenge("+447400000003", now.Add(-time.Hour)),
			idempotencyKey(user, "fresh", now.Add(-mood.IdempotencyTTL).Add(time.Millisecond)),
			idempotencyKey(user, "old", now.Add(-mood.IdempotencyTTL)),
			idempotencyKey(user, "older", now.Add(-30*24*time.Hour)),
			tombstone(user, 3, now.Add(-mood.DefaultTombstoneRetention).Add(time.Millisecond)), // kept
			tombstone(user, 2, now.Add(-mood.DefaultTombstoneRetention)),
			tombstone(user, 1, now.Add(-365*24*time.Hour)),
		)
		if _, err := db.NewRaw("INSERT INTO mood_sync (user_id, seq) VALUES (?, 3)", user).Exec(context.Background()); err != nil {
			t.Fatal(err)
		}

		counts, err := retention.Sweep(context.Background(), db, now, retention.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := retention.Counts{retention.Sessions: 3, retention.OTPChallenges: 2, retention.IdempotencyKeys: 2, retention.MoodTombstones: 2}
		if fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Errorf("deleted %v, want %v", counts, want)
		}
		keep := []string{live.ID.String(), ended.ID.String(), endedExpired.ID.String()}
		slices.Sort(keep)
		if got := column(t, db, "SELECT CAST(id AS TEXT) FROM sessions"); !slices.Equal(got, keep) {
			t.Errorf("sessions left %v, want the live one and the recently ended ones %v", got, keep)
		}
		if got := column(t, db, "SELECT phone FROM otp_challenges"); !slices.Equal(got, []string{"+447400000001"}) {
			t.Errorf("codes left %v", got)
		}
		if got := column(t, db, `SELECT "key" FROM idempotency_keys`); !slices.Equal(got, []string{"fresh"}) {
			t.Errorf("idempotency keys left %v", got)
		}
		if got := column(t, db, "SELECT CAST(change_seq AS TEXT) FROM mood_tombstones"); !slices.Equal(got, []string{"3"}) {
			t.Errorf("tombstones left %v, want the one of number 3", got)
		}
		// The change feed answers a cursor below 2 "expired" from now on.
		if got := column(t, db, "SELECT CAST(purged_seq AS TEXT) FROM mood_sync"); !slices.Equal(got, []string{"2"}) {
			t.Errorf("purged_seq %v, want 2", got)
		}
		if got := column(t, db, "SELECT phone FROM users"); len(got) != 1 {
			t.Errorf("users %v: a sweep never deletes an account", got)
		}

		// Nothing left to do: a second sweep deletes nothing.
		again, err := retention.Sweep(context.Background(), db, now, retention.Options{})
		if err != nil || again.Total() != 0 {
			t.Errorf("second sweep: %v, %v", again, err)
		}
	})
}

// A backlog goes in batches, and a sweep stops at MaxPerSweep, leaving the
// rest for the next one.
func TestSweepBatches(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *bun.DB) {
		for i := range 7 {
			insert(t, db, challenge(fmt.Sprintf("+4474000000%02d", i), now.Add(-time.Duration(i+1)*time.Minute)))
		}
		counts, err := retention.Sweep(context.Background(), db, now, retention.Options{Batch: 2, MaxPerSweep: 5})
		if err != nil {
			t.Fatal(err)
		}
		if counts[retention.OTPChallenges] != 5 {
			t.Errorf("first sweep deleted %d codes, want 5", counts[retention.OTPChallenges])
		}
		if got := column(t, db, "SELECT phone FROM otp_challenges"); len(got) != 2 {
			t.Errorf("left %v, want 2", got)
		}
		counts, err = retention.Sweep(context.Background(), db, now, retention.Options{Batch: 2, MaxPerSweep: 5})
		if err != nil || counts[retention.OTPChallenges] != 2 {
			t.Errorf("second sweep: %v, %v; want 2 codes", counts, err)
		}
	})
}

func TestSweepStopsWithItsContext(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *bun.DB) {
		insert(t, db, challenge("+447400000001", now.Add(-time.Hour)))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := retention.Sweep(ctx, db, now, retention.Options{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if got := column(t, db, "SELECT phone FROM otp_challenges"); len(got) != 1 {
			t.Errorf("a cancelled sweep deleted %v", got)
		}
	})
}
