package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/migrations"
)

// openDBPair opens a migrated database of kind twice: the service's
// handle and another, as a second client of the same database would have.
// A second handle matters on SQLite, whose handle has one connection that
// an export holds.
func openDBPair(t *testing.T, kind database.Kind) (app, other *bun.DB) {
	t.Helper()
	cfg := database.Config{SQLitePath: filepath.Join(t.TempDir(), "soul.db")}
	if kind == database.Postgres {
		cfg.URL = testservices.NewDatabase(t)
	}
	open := func() *bun.DB {
		db, _, err := database.Open(context.Background(), cfg, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	app = open()
	r, err := migrations.New(app)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	return app, open()
}

// TestExportSnapshot writes to the journal while an export is between
// batches, through another handle as a concurrent request would: a mood
// older than all (so it would fall in a later batch) appears and the
// oldest one, not yet read, goes. On Postgres the export must hold exactly
// the moods there were when it began, in order, whatever happened after.
// On SQLite, which has no snapshot, the export must instead leave the
// handle's one connection free between batches: a query of another
// request on the same handle answers at once rather than waiting for the
// whole download.
func TestExportSnapshot(t *testing.T) {
	const (
		batch = 10
		moods = 3*batch + 5 // four batches
	)
	for _, kind := range []database.Kind{database.SQLite, database.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			db, other := openDBPair(t, kind)
			svc := newService(t, db, &clock{t: time.Now()})
			const phone = "+447400123460"
			sent, err := svc.RequestCode(ctx, ip, phone)
			if err != nil {
				t.Fatal(err)
			}
			g, err := svc.VerifyCode(ctx, ip, phone, sent.Preview)
			if err != nil {
				t.Fatal(err)
			}
			userID := g.User.ID

			// One minute apart, newest first: the order an export answers.
			start := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
			newMood := func(at time.Time) mood.Mood {
				return mood.Mood{ID: uuid.New(), UserID: userID, Score: 5, Tags: []string{},
					RecordedAt: at, CreatedAt: at, UpdatedAt: at, Version: 1}
			}
			journal := make([]mood.Mood, moods)
			want := make([]uuid.UUID, moods)
			for i := range journal {
				journal[i] = newMood(start.Add(-time.Duration(i) * time.Minute))
				want[i] = journal[i].ID
			}
			if _, err := other.NewInsert().Model(&journal).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			oldest := journal[moods-1].ID
			older := newMood(start.Add(-time.Duration(moods) * time.Minute))

			var (
				got      []uuid.UUID
				batches  int
				sessions []auth.SessionInfo
			)
			err = svc.Export(ctx, userID, batch, func(u auth.User, open []auth.SessionInfo) error {
				if u.ID != userID || u.Phone != phone {
					t.Errorf("account %+v", u)
				}
				sessions = open
				return nil
			}, func(ms []mood.Mood) error {
				batches++
				for _, m := range ms {
					got = append(got, m.ID)
				}
				if batches == 1 {
					// Another request of this process, on the service's handle.
					qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					_, err := db.NewSelect().Model((*mood.Mood)(nil)).Where("user_id = ?", userID).Count(qctx)
					cancel()
					if err != nil {
						t.Errorf("a query on the same handle during the export: %v", err)
					}
					if _, err := other.NewInsert().Model(&older).Exec(ctx); err != nil {
						t.Errorf("inserting a mood during the export: %v", err)
					}
					if _, err := other.NewDelete().Model((*mood.Mood)(nil)).Where("id = ?", oldest).Exec(ctx); err != nil {
						t.Errorf("deleting a mood during the export: %v", err)
					}
				}
				return nil
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(sessions) != 1 || sessions[0].ID != g.SessionID {
				t.Errorf("sessions %+v, want the one of the sign-in (%s)", sessions, g.SessionID)
			}
			if batches != 4 {
				t.Errorf("%d batches, want 4", batches)
			}
			if kind == database.SQLite {
				// No snapshot: each batch reads the latest data; still no
				// mood is handed out twice.
				if !slices.Equal(got[:batch], want[:batch]) || len(got) != len(want) {
					t.Errorf("exported %d moods, want %d (the first batch as it was)", len(got), len(want))
				}
				seen := map[uuid.UUID]bool{}
				for _, id := range got {
					if seen[id] {
						t.Errorf("mood %s exported twice", id)
					}
					seen[id] = true
				}
			} else if !slices.Equal(got, want) {
				t.Errorf("exported %d moods, want the %d there were when it began, newest first; "+
					"the one inserted during the export is there: %v; the one deleted is missing: %v",
					len(got), len(want), slices.Contains(got, older.ID), !slices.Contains(got, oldest))
			}
			// The writes did happen: a later export sees them.
			var now []uuid.UUID
			err = svc.Export(ctx, userID, batch, func(auth.User, []auth.SessionInfo) error { return nil }, func(ms []mood.Mood) error {
				for _, m := range ms {
					now = append(now, m.ID)
				}
				return nil
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if wantNow := append(slices.Clone(want[:moods-1]), older.ID); !slices.Equal(now, wantNow) {
				t.Errorf("the next export has %d moods, want %d with the writes", len(now), len(wantNow))
			}

			// No account: ErrNotFound, and nothing handed out.
			err = svc.Export(ctx, uuid.New(), batch, func(auth.User, []auth.SessionInfo) error {
				t.Error("head called for no account")
				return nil
			}, func([]mood.Mood) error {
				t.Error("moods called for no account")
				return nil
			}, nil)
			if !errors.Is(err, auth.ErrNotFound) {
				t.Errorf("export of no account: %v, want ErrNotFound", err)
			}
		})
	}
}
