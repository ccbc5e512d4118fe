package soulauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/soultest"
)

// insertMoods writes n moods of userID straight to the database, in bulk
// inserts, one minute apart going back from now; label, note and tags
// carry mark so an export can be searched for them.
func insertMoods(tb testing.TB, db *bun.DB, userID uuid.UUID, n int, mark string) {
	tb.Helper()
	const chunk = 500
	start := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	label, note := mark+"-label", "a note "+mark+" about the day, long enough to weigh something in the export"
	batch := make([]mood.Mood, 0, chunk)
	for i := 0; i < n; i++ {
		at := start.Add(-time.Duration(i) * time.Minute)
		batch = append(batch, mood.Mood{
			ID: uuid.New(), UserID: userID, Score: i%10 + 1, Label: &label, Note: &note,
			Tags: []string{"work", mark}, RecordedAt: at, CreatedAt: at, UpdatedAt: at, Version: 1,
		})
		if len(batch) == chunk || i == n-1 {
			if _, err := db.NewInsert().Model(&batch).Exec(context.Background()); err != nil {
				tb.Fatalf("inserting moods: %v", err)
			}
			batch = batch[:0]
		}
	}
}

// exportDoc decodes an export as a client would, keeping each session's
// fields as they came.
type exportDoc struct {
	ExportedAt time.Time                    `json:"exported_at"`
	User       map[string]any               `json:"user"`
	Sessions   []map[string]json.RawMessage `json:"sessions"`
	Moods      []mood.Mood                  `json:"moods"`
}

var exportFilename = regexp.MustCompile(`^attachment; filename="soul-export-\d{4}-\d{2}-\d{2}\.json"$`)

func decodeExport(t *testing.T, resp *soultest.Response) exportDoc {
	t.Helper()
	soultest.WantStatus(t, resp, http.StatusOK)
	if cd := resp.Header.Get("Content-Disposition"); !exportFilename.MatchString(cd) {
		t.Fatalf("Content-Disposition %q", cd)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var doc exportDoc
	resp.JSON(t, &doc)
	return doc
}

// TestExport exports two accounts with a journal each on both databases
// and through PgBouncer (the export reads in one repeatable-read
// transaction, which a transaction pooler keeps on one server connection),
// every exchange checked against the OpenAPI document: all of the
// owner's moods, newest first, once each, and nothing of the other's;
// sessions without token material; the export policy's limit; and 401
// once the session is closed or the account gone.
func TestExport(t *testing.T) {
	const many = 1200 // more than two of the handler's batches
	for _, dbName := range soultest.DatabasesAndPgBouncer {
		t.Run(string(dbName), func(t *testing.T) {
			s := soultest.Start(t, soultest.Options{Database: dbName, Caddyfile: relaxedCaddyfile(t),
				Env: map[string]string{"RATE_LIMIT_EXPORT_LIMIT": "5"}})
			db := s.OpenDB(t)

			alice, bob := newClient(t, s), newClient(t, s)
			alicePhone := newPhone()
			a := alice.signIn(alicePhone)
			a2 := alice.signIn(alicePhone) // a second device
			b := bob.signIn(newPhone())
			insertMoods(t, db, a.User.ID, many, "alice")
			insertMoods(t, db, b.User.ID, 7, "bob")
			// A mood through the API too, with the newest recorded_at.
			resp := alice.do(http.MethodPost, "/api/moods", map[string]any{"score": 9, "note": "fresh"}, "Authorization", "Bearer "+a.AccessToken)
			soultest.WantStatus(t, resp, http.StatusCreated)
			var fresh mood.Mood
			resp.JSON(t, &fresh)

			doc := decodeExport(t, alice.withToken(http.MethodGet, soulauth.PathExport, a.AccessToken))
			if doc.User["id"] != a.User.ID.String() || doc.User["phone"] != alicePhone {
				t.Fatalf("user %v", doc.User)
			}
			if len(doc.Moods) != many+1 {
				t.Fatalf("%d moods, want %d", len(doc.Moods), many+1)
			}
			if doc.Moods[0].ID != fresh.ID || doc.Moods[0].Note == nil || *doc.Moods[0].Note != "fresh" {
				t.Fatalf("first mood %+v, want the newest (%s)", doc.Moods[0], fresh.ID)
			}
			seen := map[uuid.UUID]bool{}
			for i, m := range doc.Moods {
				if seen[m.ID] {
					t.Fatalf("mood %s exported twice", m.ID)
				}
				seen[m.ID] = true
				if i > 0 && m.RecordedAt.After(doc.Moods[i-1].RecordedAt) {
					t.Fatalf("mood %d is newer than the one before it", i)
				}
				if i > 0 && (m.Label == nil || *m.Label != "alice-label" || len(m.Tags) != 2 || m.Tags[1] != "alice") {
					t.Fatalf("mood %d: %+v", i, m)
				}
			}
			if n := soultest.Count(t, db, "moods", "user_id = ?", a.User.ID); n != len(seen) {
				t.Fatalf("exported %d distinct moods of %d", len(seen), n)
			}

			// Sessions: both devices, these fields each and nothing else.
			if len(doc.Sessions) != 2 {
				t.Fatalf("%d sessions, want 2", len(doc.Sessions))
			}
			for _, sess := range doc.Sessions {
				var keys []string
				for k := range sess {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				if fmt.Sprint(keys) != "[app_version created_at ended_at ended_reason expires_at id last_used_at platform]" {
					t.Fatalf("session fields %v", keys)
				}
			}

			// Bob's export holds his moods only.
			bdoc := decodeExport(t, bob.withToken(http.MethodGet, soulauth.PathExport, b.AccessToken))
			if len(bdoc.Moods) != 7 || len(bdoc.Sessions) != 1 || bdoc.User["id"] != b.User.ID.String() {
				t.Fatalf("bob's export: %d moods, %d sessions, user %v", len(bdoc.Moods), len(bdoc.Sessions), bdoc.User)
			}
			for _, m := range bdoc.Moods {
				if seen[m.ID] || m.Label == nil || *m.Label != "bob-label" {
					t.Fatalf("bob's export holds %+v", m)
				}
			}

			// Only GET.
			resp = alice.withToken(http.MethodPost, soulauth.PathExport, a.AccessToken)
			soultest.WantProblem(t, resp, http.StatusMethodNotAllowed, "method_not_allowed")

			// A closed session cannot export; the other device still can.
			soultest.WantStatus(t, alice.post(soulauth.PathLogout, map[string]string{"refresh_token": a.RefreshToken}), http.StatusNoContent)
			soultest.WantProblem(t, alice.withToken(http.MethodGet, soulauth.PathExport, a.AccessToken), http.StatusUnauthorized, "invalid_token")
			// The logged-out session is exported as ended, with why.
			doc = decodeExport(t, alice.withToken(http.MethodGet, soulauth.PathExport, a2.AccessToken))
			ended := 0
			for _, sess := range doc.Sessions {
				if string(sess["ended_reason"]) == `"signed_out"` && string(sess["ended_at"]) != "null" {
					ended++
				} else if string(sess["ended_reason"]) != "null" || string(sess["ended_at"]) != "null" {
					t.Fatalf("an open session exported as %v", sess)
				}
			}
			if len(doc.Sessions) != 2 || ended != 1 {
				t.Fatalf("sessions after logout: %v", doc.Sessions)
			}
			// Every request to the path counts against the user's five,
			// the refused ones above too: the sixth is refused.
			decodeExport(t, alice.withToken(http.MethodGet, soulauth.PathExport, a2.AccessToken))
			resp = alice.withToken(http.MethodGet, soulauth.PathExport, a2.AccessToken)
			soultest.WantProblem(t, resp, http.StatusTooManyRequests, "rate_limited")
			if p := resp.Header.Get("RateLimit-Policy"); p == "" || p[:8] != `"export"` {
				t.Fatalf("RateLimit-Policy %q, want the export policy", p)
			}

			// Gone: the account's tokens export nothing, delete nothing.
			soultest.WantStatus(t, bob.withToken(http.MethodDelete, soulauth.PathMe, b.AccessToken), http.StatusNoContent)
			soultest.WantProblem(t, bob.withToken(http.MethodGet, soulauth.PathExport, b.AccessToken), http.StatusUnauthorized, "invalid_token")
			soultest.WantProblem(t, bob.withToken(http.MethodDelete, soulauth.PathMe, b.AccessToken), http.StatusUnauthorized, "invalid_token")
			if n := soultest.Count(t, db, "moods", "user_id = ?", b.User.ID); n != 0 {
				t.Fatalf("%d of bob's moods left", n)
			}
		})
	}
}
