package soulmoods_test

import (
	"net/http"
	"testing"

	"github.com/soulapp/soul/soultest"
)

// benchServer runs the server on Postgres with a signed-in user that has
// moods to list; the exchanges are not contract-checked, so the figures
// are the server's.
func benchServer(b *testing.B, moods int) *user {
	b.Helper()
	s := soultest.Start(b, soultest.Options{Database: soultest.Postgres, Env: testEnv,
		Unchecked: "a benchmark: the figures are the server's alone"})
	u := signIn(b, s)
	for i := 0; i < moods; i++ {
		u.create(map[string]any{"score": i%10 + 1, "label": "steady", "tags": []string{"work", "sleep"}})
	}
	return u
}

// BenchmarkListMoods: GET /api/moods, a page of 20 of 200 moods, over
// loopback HTTP through the whole Caddy chain (auth, limits, encode).
func BenchmarkListMoods(b *testing.B) {
	u := benchServer(b, 200)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp := u.do(http.MethodGet, "/api/moods?limit=20", nil)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
		}
	}
}

// BenchmarkCreateMood: POST /api/moods, with and without Idempotency-Key.
func BenchmarkCreateMood(b *testing.B) {
	u := benchServer(b, 0)
	body := `{"score":7,"label":"calm","note":"a walk","tags":["walk","sun"]}`
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if resp := u.do(http.MethodPost, "/api/moods", body); resp.StatusCode != http.StatusCreated {
				b.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
			}
		}
	})
	b.Run("idempotency_key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp := u.do(http.MethodPost, "/api/moods", body, "Idempotency-Key", "bench-"+soultest.RandomHex(8))
			if resp.StatusCode != http.StatusCreated {
				b.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
			}
		}
	})
}
