package soulmoods_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/soultest"
)

// change is one entry of GET /api/moods/changes: a mood, or a tombstone.
type change struct {
	mood.Mood
	Deleted   bool      `json:"deleted"`
	DeletedAt time.Time `json:"deleted_at"`
}

type changesPage struct {
	Changes    []change `json:"changes"`
	NextCursor string   `json:"next_cursor"`
	HasMore    bool     `json:"has_more"`
}

func (u *user) changes(since string, limit int) changesPage {
	u.t.Helper()
	resp := u.do(http.MethodGet, "/api/moods/changes?"+url.Values{"since": {since}, "limit": {fmt.Sprint(limit)}}.Encode(), nil)
	soultest.WantStatus(u.t, resp, http.StatusOK)
	var p changesPage
	resp.JSON(u.t, &p)
	return p
}

func TestETagsAndConditionalRequests(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, s *soultest.Server) {
		u := signIn(t, s)
		resp := u.do(http.MethodPost, "/api/moods", map[string]any{"score": 5})
		soultest.WantStatus(t, resp, http.StatusCreated)
		var m mood.Mood
		resp.JSON(t, &m)
		if m.Version != 1 || resp.Header.Get("ETag") != `"1"` {
			t.Fatalf("created version %d, ETag %q", m.Version, resp.Header.Get("ETag"))
		}
		path := "/api/moods/" + m.ID.String()

		soultest.WantStatus(t, u.do(http.MethodGet, path, nil, "If-None-Match", `"1"`), http.StatusNotModified)
		soultest.WantStatus(t, u.do(http.MethodGet, path, nil, "If-None-Match", `W/"1", "7"`), http.StatusNotModified)
		soultest.WantStatus(t, u.do(http.MethodGet, path, nil, "If-None-Match", `"2"`), http.StatusOK)
		soultest.WantProblem(t, u.do(http.MethodGet, path, nil, "If-None-Match", `1`), http.StatusBadRequest, "invalid_etag")

		// The phone edits version 1 and succeeds; the tablet, which also
		// read version 1, is refused and handed the phone's version.
		resp = u.do(http.MethodPatch, path, `{"score":6}`, "If-Match", `"1"`)
		soultest.WantStatus(t, resp, http.StatusOK)
		if resp.Header.Get("ETag") != `"2"` {
			t.Errorf("after an edit ETag %q, want \"2\"", resp.Header.Get("ETag"))
		}
		resp = u.do(http.MethodPatch, path, `{"score":9}`, "If-Match", `"1"`)
		soultest.WantProblem(t, resp, http.StatusPreconditionFailed, "precondition_failed")
		var refused struct {
			Current mood.Mood `json:"current"`
		}
		resp.JSON(t, &refused)
		if refused.Current.ID != m.ID || refused.Current.Score != 6 || refused.Current.Version != 2 || resp.Header.Get("ETag") != `"2"` {
			t.Errorf("412 holds %+v, ETag %q; want the phone's version 2", refused.Current, resp.Header.Get("ETag"))
		}
		// A weak tag never matches If-Match.
		soultest.WantProblem(t, u.do(http.MethodPatch, path, `{"score":9}`, "If-Match", `W/"2"`), http.StatusPreconditionFailed, "precondition_failed")
		for _, bad := range []string{`2`, `"2`, `"a b"`, `*, "2"`} {
			soultest.WantProblem(t, u.do(http.MethodPatch, path, `{"score":9}`, "If-Match", bad), http.StatusBadRequest, "invalid_etag")
			soultest.WantProblem(t, u.do(http.MethodDelete, path, nil, "If-Match", bad), http.StatusBadRequest, "invalid_etag")
		}
		soultest.WantProblem(t, u.do(http.MethodDelete, path, nil, "If-Match", `"1"`), http.StatusPreconditionFailed, "precondition_failed")
		soultest.WantStatus(t, u.do(http.MethodPatch, path, `{"note":"x"}`, "If-Match", `*`), http.StatusOK)
		soultest.WantStatus(t, u.do(http.MethodGet, path, nil), http.StatusOK)

		// The list's tag follows its content.
		resp = u.do(http.MethodGet, "/api/moods", nil)
		soultest.WantStatus(t, resp, http.StatusOK)
		etag := resp.Header.Get("ETag")
		soultest.WantStatus(t, u.do(http.MethodGet, "/api/moods", nil, "If-None-Match", etag), http.StatusNotModified)

		soultest.WantStatus(t, u.do(http.MethodDelete, path, nil, "If-Match", `"3"`), http.StatusNoContent)
		soultest.WantStatus(t, u.do(http.MethodGet, "/api/moods", nil, "If-None-Match", etag), http.StatusOK)
		soultest.WantProblem(t, u.do(http.MethodDelete, path, nil, "If-Match", `"3"`), http.StatusNotFound, "not_found")
		// A compressed answer's tag carries the encoding (Caddy's encode
		// handler); sent back in If-Match it names the same version.
		long := u.create(map[string]any{"score": 4, "note": strings.Repeat("a long day. ", 100)})
		resp = u.do(http.MethodGet, "/api/moods/"+long.ID.String(), nil, "Accept-Encoding", "gzip")
		soultest.WantStatus(t, resp, http.StatusOK)
		if tag := resp.Header.Get("ETag"); tag != `"1-gzip"` {
			t.Errorf("compressed answer's ETag %q, want \"1-gzip\"", tag)
		}
		soultest.WantStatus(t, u.do(http.MethodGet, "/api/moods/"+long.ID.String(), nil, "Accept-Encoding", "gzip", "If-None-Match", `"1-gzip"`), http.StatusNotModified)
		soultest.WantStatus(t, u.do(http.MethodPatch, "/api/moods/"+long.ID.String(), `{"score":5}`, "If-Match", `"1-gzip"`), http.StatusOK)
		soultest.WantProblem(t, u.do(http.MethodPatch, "/api/moods/"+long.ID.String(), `{"score":6}`, "If-Match", `"1-gzip"`), http.StatusPreconditionFailed, "precondition_failed")

		// Another user's mood stays not found, whatever the condition.
		other := signIn(t, s)
		n := u.create(map[string]any{"score": 2})
		soultest.WantProblem(t, other.do(http.MethodPatch, "/api/moods/"+n.ID.String(), `{"score":3}`, "If-Match", `"1"`), http.StatusNotFound, "not_found")
	})
}

func TestChangesFeed(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, s *soultest.Server) {
		u := signIn(t, s)
		// A first sync of an empty journal: nothing, and a cursor from
		// which everything later comes.
		empty := u.changes("", 2)
		if len(empty.Changes) != 0 || empty.HasMore || empty.NextCursor == "" {
			t.Fatalf("empty journal %+v", empty)
		}
		a := u.create(map[string]any{"score": 1})
		b := u.create(map[string]any{"score": 2})
		c := u.create(map[string]any{"score": 3})
		soultest.WantStatus(t, u.do(http.MethodPatch, "/api/moods/"+a.ID.String(), `{"score":4}`), http.StatusOK)
		soultest.WantStatus(t, u.do(http.MethodDelete, "/api/moods/"+b.ID.String(), nil), http.StatusNoContent)

		// In the order of the writes, each mood once at its last change.
		p := u.changes("", 2)
		if len(p.Changes) != 2 || !p.HasMore || p.Changes[0].ID != c.ID || p.Changes[1].ID != a.ID || p.Changes[1].Score != 4 || p.Changes[1].Version != 2 {
			t.Fatalf("first page %+v", p)
		}
		p2 := u.changes(p.NextCursor, 2)
		if len(p2.Changes) != 1 || p2.HasMore || p2.Changes[0].ID != b.ID || !p2.Changes[0].Deleted || p2.Changes[0].DeletedAt.IsZero() {
			t.Fatalf("second page %+v", p2)
		}
		if all := u.changes(empty.NextCursor, 10); len(all.Changes) != 3 {
			t.Errorf("from the empty journal's cursor: %+v", all)
		}
		// Caught up: nothing, and a cursor that still works.
		p3 := u.changes(p2.NextCursor, 2)
		if len(p3.Changes) != 0 || p3.HasMore {
			t.Fatalf("caught up %+v", p3)
		}
		d := u.create(map[string]any{"score": 5})
		if p4 := u.changes(p3.NextCursor, 10); len(p4.Changes) != 1 || p4.Changes[0].ID != d.ID {
			t.Fatalf("after a new mood %+v", p4)
		}

		// Another account's cursor, or an altered one, is refused, never
		// read as a position in this account's feed.
		other := signIn(t, s)
		q := "/api/moods/changes?since="
		soultest.WantProblem(t, other.do(http.MethodGet, q+p.NextCursor, nil), http.StatusBadRequest, "invalid_cursor")
		forged := []byte(p.NextCursor)
		forged[3] ^= 1
		soultest.WantProblem(t, u.do(http.MethodGet, q+string(forged), nil), http.StatusBadRequest, "invalid_cursor")
		soultest.WantProblem(t, u.do(http.MethodGet, q+"AAAA", nil), http.StatusBadRequest, "invalid_cursor")
		soultest.WantProblem(t, u.do(http.MethodGet, "/api/moods/changes?limit=0", nil), http.StatusUnprocessableEntity, "validation_failed")
		soultest.WantProblem(t, u.do(http.MethodPost, "/api/moods/changes", nil), http.StatusMethodNotAllowed, "method_not_allowed")

		// Once the sweep deleted tombstones after a cursor, the cursor has
		// expired; from the beginning still works.
		db := s.OpenDB(t)
		if _, err := db.NewRaw("UPDATE mood_sync SET purged_seq = 5 WHERE user_id = ?", u.id).Exec(t.Context()); err != nil {
			t.Fatal(err)
		}
		soultest.WantProblem(t, u.do(http.MethodGet, q+p.NextCursor, nil), http.StatusGone, "sync_cursor_expired")
		if all := u.changes("", 100); len(all.Changes) != 4 {
			t.Errorf("from the beginning after a sweep: %+v", all)
		}
	})
}

// While several devices write, a device that pages the feed and applies it
// ends with exactly the moods the server has, each at its last version:
// no change is skipped. On Postgres this is the commit-order race: a
// change numbered below one the reader has seen, committed after it, would
// be skipped; the per-user counter taken under the user's lock prevents it.
func TestChangesNeverSkipUnderConcurrentWrites(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, s *soultest.Server) {
		u := signIn(t, s)
		var (
			mu    sync.Mutex
			alive []uuid.UUID
			stop  atomic.Bool
			wg    sync.WaitGroup
			fails atomic.Int32
		)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				for !stop.Load() {
					mu.Lock()
					var id uuid.UUID
					if len(alive) > 0 {
						id = alive[rng.IntN(len(alive))]
					}
					mu.Unlock()
					var resp *soultest.Response
					switch op := rng.IntN(10); {
					case op < 5 || id == uuid.Nil:
						resp = u.do(http.MethodPost, "/api/moods", map[string]any{"score": 1 + rng.IntN(10)})
						if resp.StatusCode == http.StatusCreated {
							var m mood.Mood
							_ = json.Unmarshal(resp.Body, &m)
							mu.Lock()
							alive = append(alive, m.ID)
							mu.Unlock()
						}
					case op < 8:
						resp = u.do(http.MethodPatch, "/api/moods/"+id.String(), map[string]any{"score": 1 + rng.IntN(10)})
					default:
						resp = u.do(http.MethodDelete, "/api/moods/"+id.String(), nil)
						mu.Lock()
						for i, a := range alive {
							if a == id {
								alive = append(alive[:i], alive[i+1:]...)
								break
							}
						}
						mu.Unlock()
					}
					// A write racing a delete of its mood is 404; anything
					// else but success is a failure.
					if resp.StatusCode >= 500 || (resp.StatusCode >= 400 && resp.StatusCode != http.StatusNotFound) {
						fails.Add(1)
						t.Errorf("write answered %d: %s", resp.StatusCode, resp.Body)
					}
				}
			}()
		}

		// The syncing device: pages of 3, applied as they come.
		local := map[uuid.UUID]int64{}
		cursor := ""
		apply := func() bool {
			p := u.changes(cursor, 3)
			for _, c := range p.Changes {
				if c.Deleted {
					delete(local, c.ID)
				} else {
					local[c.ID] = c.Version
				}
			}
			cursor = p.NextCursor
			return p.HasMore
		}
		deadline := time.Now().Add(1500 * time.Millisecond)
		pages := 0
		for time.Now().Before(deadline) {
			apply()
			pages++
		}
		stop.Store(true)
		wg.Wait()
		for apply() {
		}

		var server []mood.Mood
		db := s.OpenDB(t)
		if err := db.NewSelect().Model(&server).Where("user_id = ?", u.id).Scan(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := map[uuid.UUID]int64{}
		for _, m := range server {
			want[m.ID] = m.Version
		}
		if len(want) < 5 || fails.Load() > 0 {
			t.Fatalf("only %d moods written, %d failures", len(want), fails.Load())
		}
		for id, v := range want {
			if local[id] != v {
				t.Errorf("mood %s: the device has version %d, the server %d", id, local[id], v)
			}
		}
		for id := range local {
			if _, ok := want[id]; !ok {
				t.Errorf("mood %s: the device kept it, the server deleted it", id)
			}
		}
		t.Logf("%d moods, %d pages read while writing", len(want), pages)
	})
}
