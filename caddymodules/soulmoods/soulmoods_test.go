package soulmoods_test

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/soultest"
)

func TestMoodLifecycle(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, s *soultest.Server) {
		u := signIn(t, s)
		before := time.Now().UTC().Add(-time.Second)
		m := u.create(map[string]any{"score": 7, "label": "calm", "note": "a walk", "tags": []string{" Walk", "walk", "Sun "}})
		if m.Score != 7 || *m.Label != "calm" || *m.Note != "a walk" || !reflect.DeepEqual(m.Tags, []string{"walk", "sun"}) {
			t.Errorf("created %+v", m)
		}
		if m.RecordedAt.Before(before) || !m.RecordedAt.Equal(m.CreatedAt) || !m.UpdatedAt.Equal(m.CreatedAt) {
			t.Errorf("times: recorded %v created %v updated %v", m.RecordedAt, m.CreatedAt, m.UpdatedAt)
		}

		resp := u.do(http.MethodGet, "/api/moods/"+m.ID.String(), nil)
		soultest.WantStatus(t, resp, http.StatusOK)
		var got mood.Mood
		resp.JSON(t, &got)
		if !reflect.DeepEqual(got, m) {
			t.Errorf("GET = %+v, want %+v", got, m)
		}
		// Every member is present, null included.
		for _, k := range []string{`"id":`, `"score":`, `"label":`, `"note":`, `"tags":`, `"recorded_at":`, `"created_at":`, `"updated_at":`} {
			if !strings.Contains(string(resp.Body), k) {
				t.Errorf("body %s has no %s", resp.Body, k)
			}
		}

		// PATCH: absent keeps, null clears.
		resp = u.do(http.MethodPatch, "/api/moods/"+m.ID.String(), `{"label":null,"score":3}`)
		soultest.WantStatus(t, resp, http.StatusOK)
		var patched mood.Mood
		resp.JSON(t, &patched)
		if patched.Label != nil || patched.Score != 3 || *patched.Note != "a walk" || !reflect.DeepEqual(patched.Tags, m.Tags) {
			t.Errorf("patched %+v", patched)
		}
		if !patched.UpdatedAt.After(m.UpdatedAt) && !patched.UpdatedAt.Equal(m.UpdatedAt) {
			t.Errorf("updated_at went back: %v < %v", patched.UpdatedAt, m.UpdatedAt)
		}
		if !strings.Contains(string(resp.Body), `"label":null`) {
			t.Errorf("cleared label not null: %s", resp.Body)
		}
		resp = u.do(http.MethodPatch, "/api/moods/"+m.ID.String(), `{"note":null,"tags":[]}`)
		soultest.WantStatus(t, resp, http.StatusOK)
		resp.JSON(t, &patched)
		if patched.Note != nil || len(patched.Tags) != 0 || !strings.Contains(string(resp.Body), `"tags":[]`) {
			t.Errorf("after clearing: %s", resp.Body)
		}
		soultest.WantProblem(t, u.do(http.MethodPatch, "/api/moods/"+m.ID.String(), `{"score":null}`), http.StatusUnprocessableEntity, "validation_failed")

		resp = u.do(http.MethodGet, "/api/moods", nil)
		soultest.WantStatus(t, resp, http.StatusOK)
		var list []mood.Mood
		resp.JSON(t, &list)
		if len(list) != 1 || list[0].ID != m.ID || resp.Header.Get("Link") != "" {
			t.Errorf("list = %s (Link %q)", resp.Body, resp.Header.Get("Link"))
		}

		resp = u.do(http.MethodDelete, "/api/moods/"+m.ID.String(), nil)
		soultest.WantStatus(t, resp, http.StatusNoContent)
		if len(resp.Body) != 0 {
			t.Errorf("204 with body %q", resp.Body)
		}
		soultest.WantProblem(t, u.do(http.MethodGet, "/api/moods/"+m.ID.String(), nil), http.StatusNotFound, "not_found")
		soultest.WantProblem(t, u.do(http.MethodDelete, "/api/moods/"+m.ID.String(), nil), http.StatusNotFound, "not_found")

		resp = u.do(http.MethodGet, "/api/moods", nil)
		soultest.WantStatus(t, resp, http.StatusOK)
		if strings.TrimSpace(string(resp.Body)) != "[]" {
			t.Errorf("empty list = %s, want []", resp.Body)
		}
	})
}

func TestRoutingAndAuth(t *testing.T) {
	s := start(t, soultest.SQLite)
	u := signIn(t, s)
	m := u.create(map[string]any{"score": 5})

	for _, c := range []struct {
		method, path, allow string
	}{
		{http.MethodPut, "/api/moods", "GET, POST"},
		{http.MethodDelete, "/api/moods", "GET, POST"},
		{http.MethodPost, "/api/moods/" + m.ID.String(), "GET, PATCH, DELETE"},
		{http.MethodPut, "/api/moods/" + m.ID.String(), "GET, PATCH, DELETE"},
	} {
		resp := u.do(c.method, c.path, nil)
		soultest.WantProblem(t, resp, http.StatusMethodNotAllowed, "method_not_allowed")
		if got := resp.Header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}

	// Malformed ids are simply not found.
	for _, id := range []string{"nope", "123", strings.ToUpper(m.ID.String()), "{" + m.ID.String() + "}", m.ID.String() + "/x", ""} {
		soultest.WantProblem(t, u.do(http.MethodGet, "/api/moods/"+id, nil), http.StatusNotFound, "not_found")
	}
	soultest.WantProblem(t, u.do(http.MethodGet, "/api/moodsx", nil), http.StatusNotFound, "not_found")

	for _, path := range []string{"/api/moods", "/api/moods/" + m.ID.String()} {
		resp := s.Do(http.MethodGet, path, nil)
		soultest.WantProblem(t, resp, http.StatusUnauthorized, "unauthorized")
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("401 for %s without WWW-Authenticate", path)
		}
		resp = s.Do(http.MethodGet, path, nil, "Authorization", "Bearer not-a-token")
		soultest.WantProblem(t, resp, http.StatusUnauthorized, "invalid_token")
		if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestOtherUsersMoodIsNotFound(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, s *soultest.Server) {
		alice, bob := signIn(t, s), signIn(t, s)
		m := alice.create(map[string]any{"score": 4, "label": "private"})
		path := "/api/moods/" + m.ID.String()

		soultest.WantProblem(t, bob.do(http.MethodGet, path, nil), http.StatusNotFound, "not_found")
		soultest.WantProblem(t, bob.do(http.MethodPatch, path, `{"score":1}`), http.StatusNotFound, "not_found")
		soultest.WantProblem(t, bob.do(http.MethodDelete, path, nil), http.StatusNotFound, "not_found")
		resp := bob.do(http.MethodGet, "/api/moods", nil)
		soultest.WantStatus(t, resp, http.StatusOK)
		if strings.TrimSpace(string(resp.Body)) != "[]" {
			t.Errorf("bob's list = %s", resp.Body)
		}

		resp = alice.do(http.MethodGet, path, nil)
		soultest.WantStatus(t, resp, http.StatusOK)
		var got mood.Mood
		resp.JSON(t, &got)
		if got.Score != 4 {
			t.Errorf("alice's mood changed: %+v", got)
		}
	})
}

func TestIdempotencyKey(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, s *soultest.Server) {
		db := s.OpenDB(t)
		alice, bob := signIn(t, s), signIn(t, s)
		body := map[string]any{"score": 6, "tags": []string{"x"}}

		first := alice.do(http.MethodPost, "/api/moods", body, "Idempotency-Key", "k-1")
		soultest.WantStatus(t, first, http.StatusCreated)
		retry := alice.do(http.MethodPost, "/api/moods", body, "Idempotency-Key", "k-1")
		soultest.WantStatus(t, retry, http.StatusCreated)
		if string(retry.Body) != string(first.Body) || retry.Header.Get("Location") != first.Header.Get("Location") {
			t.Errorf("retry answered %s, first %s", retry.Body, first.Body)
		}
		if n := soultest.Count(t, db, "moods", "user_id = ?", alice.id); n != 1 {
			t.Errorf("%d moods after a retried POST, want 1", n)
		}

		resp := alice.do(http.MethodPost, "/api/moods", map[string]any{"score": 7}, "Idempotency-Key", "k-1")
		soultest.WantProblem(t, resp, http.StatusUnprocessableEntity, "idempotency_key_reused")
		if n := soultest.Count(t, db, "moods", "user_id = ?", alice.id); n != 1 {
			t.Errorf("%d moods after a reused key, want 1", n)
		}

		// Keys are per user.
		other := bob.create(body, "Idempotency-Key", "k-1")
		if first.Header.Get("Location") == "/api/moods/"+other.ID.String() {
			t.Error("bob got alice's mood")
		}

		// Without a key every POST creates.
		alice.create(body)
		alice.create(body)
		if n := soultest.Count(t, db, "moods", "user_id = ?", alice.id); n != 3 {
			t.Errorf("%d moods, want 3", n)
		}

		soultest.WantProblem(t, alice.do(http.MethodPost, "/api/moods", body, "Idempotency-Key", strings.Repeat("k", 256)),
			http.StatusUnprocessableEntity, "validation_failed")

		// A key older than 24 h is forgotten, and dropped by the next write.
		if _, err := db.NewUpdate().Model((*mood.IdempotencyKey)(nil)).
			Set("created_at = ?", time.Now().UTC().Add(-25*time.Hour)).
			Where("user_id = ?", alice.id).Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		again := alice.create(map[string]any{"score": 7}, "Idempotency-Key", "k-1")
		if "/api/moods/"+again.ID.String() == first.Header.Get("Location") {
			t.Error("an expired key answered its old mood")
		}
		if n := soultest.Count(t, db, "idempotency_keys", "user_id = ? AND created_at < ?", alice.id, time.Now().UTC().Add(-24*time.Hour)); n != 0 {
			t.Errorf("%d expired keys left", n)
		}

		// Deleting the mood lets its key go too.
		soultest.WantStatus(t, alice.do(http.MethodDelete, "/api/moods/"+again.ID.String(), nil), http.StatusNoContent)
		if n := soultest.Count(t, db, "idempotency_keys", "user_id = ?", alice.id); n != 0 {
			t.Errorf("%d keys left after deleting their mood", n)
		}
	})
}

func TestBodyRules(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, s *soultest.Server) {
		u := signIn(t, s)
		m := u.create(map[string]any{"score": 5})

		big := `{"score":5,"note":"` + strings.Repeat("x", 64*1024+1-len(`{"score":5,"note":""}`)) + `"}`
		if len(big) != 64*1024+1 {
			t.Fatalf("body of %d bytes", len(big))
		}
		soultest.WantProblem(t, u.do(http.MethodPost, "/api/moods", big), http.StatusRequestEntityTooLarge, "payload_too_large")
		soultest.WantProblem(t, u.do(http.MethodPatch, "/api/moods/"+m.ID.String(), big), http.StatusRequestEntityTooLarge, "payload_too_large")
		soultest.WantProblem(t, u.do(http.MethodPost, "/api/moods", `{"score":5}`, "Content-Type", "text/plain"),
			http.StatusUnsupportedMediaType, "unsupported_media_type")
		soultest.WantProblem(t, u.do(http.MethodPatch, "/api/moods/"+m.ID.String(), `{"score":5}`, "Content-Type", "application/x-www-form-urlencoded"),
			http.StatusUnsupportedMediaType, "unsupported_media_type")
		soultest.WantProblem(t, u.do(http.MethodPost, "/api/moods", `{"score":5,"colour":"blue"}`), http.StatusBadRequest, "invalid_json")
		soultest.WantProblem(t, u.do(http.MethodPost, "/api/moods", `{"score":`), http.StatusBadRequest, "invalid_json")
		soultest.WantProblem(t, u.do(http.MethodPatch, "/api/moods/"+m.ID.String(), `{"colour":"blue"}`), http.StatusBadRequest, "invalid_json")

		ahead := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
		for _, c := range []struct {
			body  any
			field string
		}{
			{map[string]any{"score": 0}, "score"},
			{map[string]any{"score": 11}, "score"},
			{map[string]any{"score": 5, "label": strings.Repeat("l", 33)}, "label"},
			{map[string]any{"score": 5, "note": strings.Repeat("n", 2001)}, "note"},
			{map[string]any{"score": 5, "tags": strings.Split("a b c d e f g h i j k", " ")}, "tags"},
			{map[string]any{"score": 5, "tags": []string{strings.Repeat("t", 25)}}, "tags[0]"},
			{map[string]any{"score": 5, "recorded_at": ahead}, "recorded_at"},
			{map[string]any{"label": "no score"}, "score"},
		} {
			resp := u.do(http.MethodPost, "/api/moods", c.body)
			soultest.WantProblem(t, resp, http.StatusUnprocessableEntity, "validation_failed")
			p := resp.Problem(t)
			if len(p.Errors) != 1 || p.Errors[0].Field != c.field || p.Errors[0].Message == "" {
				t.Errorf("%v: errors %+v, want one for %s", c.body, p.Errors, c.field)
			}
		}
		resp := u.do(http.MethodPatch, "/api/moods/"+m.ID.String(), map[string]any{"recorded_at": ahead, "score": 11})
		soultest.WantProblem(t, resp, http.StatusUnprocessableEntity, "validation_failed")
		if p := resp.Problem(t); len(p.Errors) != 2 {
			t.Errorf("errors %+v, want score and recorded_at", p.Errors)
		}

		// Only the first mood was stored, unchanged.
		resp = u.do(http.MethodGet, "/api/moods", nil)
		var list []mood.Mood
		resp.JSON(t, &list)
		if len(list) != 1 || list[0].Score != 5 || list[0].Note != nil {
			t.Errorf("moods after refused writes: %s", resp.Body)
		}
	})
}

var nextLink = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// page fetches path and returns its moods and the next link, if any.
func page(t *testing.T, u *user, path string) ([]mood.Mood, string) {
	t.Helper()
	resp := u.do(http.MethodGet, path, nil)
	soultest.WantStatus(t, resp, http.StatusOK)
	var moods []mood.Mood
	resp.JSON(t, &moods)
	link := resp.Header.Get("Link")
	if link == "" {
		return moods, ""
	}
	m := nextLink.FindStringSubmatch(link)
	if m == nil {
		t.Fatalf("Link %q", link)
	}
	return moods, m[1]
}

func TestPaging(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, s *soultest.Server) {
		u := signIn(t, s)
		other := signIn(t, s)
		store := mood.NewStore(s.OpenDB(t), nil)
		ctx := context.Background()
		base := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
		// 250 moods on 50 distinct times: five share each recorded_at, so
		// the id must break ties for nothing to be lost or repeated.
		want := map[uuid.UUID]time.Time{}
		for i := 0; i < 250; i++ {
			at := base.Add(time.Duration(i/5) * time.Hour)
			c, err := store.Create(ctx, u.id, mood.New{Score: i%10 + 1, RecordedAt: &at}, "")
			if err != nil {
				t.Fatal(err)
			}
			want[c.Mood.ID] = at
		}
		// Someone else's moods among them never show.
		for i := 0; i < 5; i++ {
			at := base.Add(time.Duration(i) * time.Hour)
			if _, err := store.Create(ctx, other.id, mood.New{Score: 1, RecordedAt: &at}, ""); err != nil {
				t.Fatal(err)
			}
		}

		walk := func(path string) []mood.Mood {
			var all []mood.Mood
			for pages := 0; path != ""; pages++ {
				if pages > 300 {
					t.Fatal("paging does not end")
				}
				var moods []mood.Mood
				moods, path = page(t, u, path)
				if len(moods) == 0 {
					t.Fatal("an empty page with a next link")
				}
				all = append(all, moods...)
			}
			return all
		}
		check := func(all []mood.Mood, from, to time.Time) {
			t.Helper()
			seen := map[uuid.UUID]bool{}
			expected := 0
			for _, at := range want {
				if !at.Before(from) && at.Before(to) {
					expected++
				}
			}
			for i, m := range all {
				if seen[m.ID] {
					t.Fatalf("mood %s repeated", m.ID)
				}
				seen[m.ID] = true
				at, ok := want[m.ID]
				if !ok || !at.Equal(m.RecordedAt) {
					t.Fatalf("mood %s at %v is not one of ours", m.ID, m.RecordedAt)
				}
				if m.RecordedAt.Before(from) || !m.RecordedAt.Before(to) {
					t.Fatalf("mood at %v outside [%v, %v)", m.RecordedAt, from, to)
				}
				if i > 0 && !newerFirst(all[i-1], m) {
					t.Fatalf("moods %d and %d out of order: %v %s, %v %s", i-1, i, all[i-1].RecordedAt, all[i-1].ID, m.RecordedAt, m.ID)
				}
			}
			if len(all) != expected {
				t.Fatalf("%d moods, want %d", len(all), expected)
			}
		}

		forever := base.Add(1000 * time.Hour)
		check(walk("/api/moods"), base, forever)
		check(walk("/api/moods?limit=7"), base, forever)
		check(walk("/api/moods?limit=100"), base, forever)
		first, _ := page(t, u, "/api/moods")
		if len(first) != 20 {
			t.Errorf("default page of %d moods, want 20", len(first))
		}

		from, to := base.Add(10*time.Hour), base.Add(23*time.Hour)
		q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "limit": {"9"}}
		bounded := walk("/api/moods?" + q.Encode())
		check(bounded, from, to)
		if len(bounded) != 13*5 {
			t.Errorf("%d moods in 13 hours, want 65", len(bounded))
		}
		// The bounds in another zone mean the same instants.
		q.Set("from", from.In(time.FixedZone("", 5*3600+1800)).Format(time.RFC3339))
		check(walk("/api/moods?"+q.Encode()), from, to)

		for _, bad := range []string{"limit=0", "limit=101", "limit=ten", "before=bogus", "from=yesterday", "to=2026-01-01",
			"from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"} {
			resp := u.do(http.MethodGet, "/api/moods?"+bad, nil)
			soultest.WantProblem(t, resp, http.StatusUnprocessableEntity, "validation_failed")
			if p := resp.Problem(t); len(p.Errors) != 1 {
				t.Errorf("%s: errors %+v", bad, p.Errors)
			}
		}
	})
}

func newerFirst(a, b mood.Mood) bool {
	if !a.RecordedAt.Equal(b.RecordedAt) {
		return a.RecordedAt.After(b.RecordedAt)
	}
	ids := []string{a.ID.String(), b.ID.String()}
	return sort.StringsAreSorted([]string{ids[1], ids[0]}) && ids[0] != ids[1]
}
