package soul_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/metrics"
	"github.com/soulapp/soul/internal/retention"
	"github.com/soulapp/soul/soultest"
)

// The running app sweeps on its own: an expired one-time code and a
// revoked session disappear within a few intervals, a live session stays,
// and the deletions are counted in soul_retention_deleted_total.
func TestAppSweepsExpiredRows(t *testing.T) {
	for _, db := range soultest.Databases {
		t.Run(string(db), func(t *testing.T) {
			s := soultest.Start(t, soultest.Options{Database: db, Env: map[string]string{"RETENTION_SWEEP_INTERVAL": "1s"}})
			bdb := s.OpenDB(t)
			ctx := context.Background()
			// Read before the rows exist: a sweep may delete them, and count
			// them, the moment they are inserted.
			before := counter(t, metrics.RetentionDeleted.WithLabelValues(retention.Sessions))
			now := time.Now().UTC()
			user := auth.User{ID: uuid.New(), Phone: "+447400123456", CreatedAt: now}
			// An ended session is listed to the user's devices for 7 days,
			// then swept; one ended a minute ago stays.
			revoked, recent := now.Add(-8*24*time.Hour), now.Add(-time.Minute)
			dead := auth.Session{ID: uuid.New(), UserID: user.ID, TokenHash: []byte("dead"), CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour), RevokedAt: &revoked}
			ended := auth.Session{ID: uuid.New(), UserID: user.ID, TokenHash: []byte("ended"), CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour), RevokedAt: &recent}
			live := auth.Session{ID: uuid.New(), UserID: user.ID, TokenHash: []byte("live"), CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour)}
			code := auth.Challenge{Phone: "+447400654321", CodeHash: []byte("hmac"), ExpiresAt: now.Add(-time.Minute), CreatedAt: now.Add(-6 * time.Minute)}
			for _, m := range []any{&user, &dead, &ended, &live, &code} {
				if _, err := bdb.NewInsert().Model(m).Exec(ctx); err != nil {
					t.Fatal(err)
				}
			}

			deadline := time.Now().Add(15 * time.Second)
			for soultest.Count(t, bdb, "sessions", "id = ?", dead.ID)+soultest.Count(t, bdb, "otp_challenges", "1 = 1") > 0 {
				if time.Now().After(deadline) {
					t.Fatal("the session ended 8 days ago or the expired code is still there after 15 s of 1 s sweeps")
				}
				time.Sleep(100 * time.Millisecond)
			}
			if n := soultest.Count(t, bdb, "sessions", "id = ?", live.ID); n != 1 {
				t.Errorf("the live session was deleted")
			}
			if n := soultest.Count(t, bdb, "sessions", "id = ?", ended.ID); n != 1 {
				t.Errorf("the session ended a minute ago was deleted before its 7 days")
			}
			// The sweep counts its deletions after it commits them, so the
			// counter may trail the rows' disappearance by a moment.
			for after := counter(t, metrics.RetentionDeleted.WithLabelValues(retention.Sessions)); after < before+1; after = counter(t, metrics.RetentionDeleted.WithLabelValues(retention.Sessions)) {
				if time.Now().After(deadline) {
					t.Fatalf("soul_retention_deleted_total{kind=sessions} went from %v to %v", before, after)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
