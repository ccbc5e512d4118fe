package soulmoods_test

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"

	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/soultest"
)

// The summary through the server, on both databases: London's days around
// the clocks going forward (29 March 2026, 23 hours long), only the
// signed-in user's moods, every answer checked against the document.
func TestSummary(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, s *soultest.Server) {
		u, other := signIn(t, s), signIn(t, s)
		for _, m := range []struct {
			score int
			at    string
			tags  []string
		}{
			{4, "2026-03-28T23:59:59Z", []string{"work"}},          // 28 March, 23:59 GMT
			{6, "2026-03-29T00:00:00Z", []string{"sleep", "work"}}, // 29 March, 00:00 GMT
			{9, "2026-03-29T22:59:59Z", []string{"sleep"}},         // 29 March, 23:59 BST
			{2, "2026-03-29T23:00:00Z", []string{}},                // 30 March, 00:00 BST
		} {
			u.create(map[string]any{"score": m.score, "recorded_at": m.at, "tags": m.tags})
		}
		other.create(map[string]any{"score": 1, "recorded_at": "2026-03-29T12:00:00Z"})

		q := url.Values{"from": {"2026-03-01T00:00:00Z"}, "to": {"2026-04-01T00:00:00Z"}, "tz": {"Europe/London"}}
		resp := u.do(http.MethodGet, "/api/moods/summary?"+q.Encode(), nil)
		soultest.WantStatus(t, resp, http.StatusOK)
		var got mood.Summary
		resp.JSON(t, &got)
		want := []mood.SummaryBucket{
			{Date: "2026-03-28", Count: 1, Mean: 4, Min: 4, Max: 4, TopTags: []mood.TagCount{{Tag: "work", Count: 1}}},
			{Date: "2026-03-29", Count: 2, Mean: 7.5, Min: 6, Max: 9, TopTags: []mood.TagCount{{Tag: "sleep", Count: 2}, {Tag: "work", Count: 1}}},
			{Date: "2026-03-30", Count: 1, Mean: 2, Min: 2, Max: 2, TopTags: []mood.TagCount{}},
		}
		if !reflect.DeepEqual(got.Buckets, want) || got.Zone != "Europe/London" || got.Bucket != mood.BucketDay {
			t.Errorf("summary %s", resp.Body)
		}
		if resp.Header.Get("RateLimit-Policy") == "" {
			t.Errorf("no RateLimit-Policy: the default policy does not count it")
		}

		// Weeks: the last mood is on Monday 30 March in London, still
		// Sunday 29 March in UTC.
		for tz, weeks := range map[string][]int{"Europe/London": {3, 1}, "UTC": {4}} {
			q.Set("tz", tz)
			q.Set("bucket", "week")
			resp = u.do(http.MethodGet, "/api/moods/summary?"+q.Encode(), nil)
			soultest.WantStatus(t, resp, http.StatusOK)
			var got mood.Summary
			resp.JSON(t, &got)
			var counts []int
			for _, b := range got.Buckets {
				counts = append(counts, b.Count)
			}
			if !reflect.DeepEqual(counts, weeks) || got.Buckets[0].Date != "2026-03-23" {
				t.Errorf("weeks in %s: %s", tz, resp.Body)
			}
		}
	})
}

func TestSummaryRefusals(t *testing.T) {
	s := start(t, soultest.SQLite)
	u := signIn(t, s)
	ok := "from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"
	for _, c := range []struct{ query, field string }{
		{ok + "&tz=Mars/Olympus_Mons", "tz"},
		{ok + "&tz=Local", "tz"},
		{ok + "&bucket=year", "bucket"},
		{"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"},
		{"from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"}, // six years of days
		{"from=2026-01-01&to=2026-02-01T00:00:00Z", "from"},
		{"to=2026-02-01T00:00:00Z", "from"},
	} {
		resp := u.do(http.MethodGet, "/api/moods/summary?"+c.query, nil)
		soultest.WantProblem(t, resp, http.StatusUnprocessableEntity, "validation_failed")
		var p struct {
			Errors []struct{ Field string } `json:"errors"`
		}
		resp.JSON(t, &p)
		if len(p.Errors) != 1 || p.Errors[0].Field != c.field {
			t.Errorf("%s: errors %+v, want one for %s", c.query, p.Errors, c.field)
		}
	}
	soultest.WantProblem(t, s.Do(http.MethodGet, "/api/moods/summary?"+ok, nil), http.StatusUnauthorized, "unauthorized")
	resp := u.do(http.MethodPost, "/api/moods/summary", nil)
	soultest.WantProblem(t, resp, http.StatusMethodNotAllowed, "method_not_allowed")
	if resp.Header.Get("Allow") != "GET" {
		t.Errorf("Allow %q", resp.Header.Get("Allow"))
	}
	soultest.WantProblem(t, u.do(http.MethodGet, "/api/moods/summary/x", nil), http.StatusNotFound, "not_found")
}
