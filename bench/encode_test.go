// Package bench holds the load benchmark (cmd/soulbench) and
// micro-benchmarks of hot paths that belong to no single package.
package bench

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/soulapp/soul/internal/mood"
)

// BenchmarkEncodeMoodList: the body of GET /api/moods, a page of 20 moods,
// encoded the way soul_moods writes it (json.Marshal).
func BenchmarkEncodeMoodList(b *testing.B) {
	label, note := "steady", "a walk by the river after work"
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	page := make([]mood.Mood, 20)
	for i := range page {
		page[i] = mood.Mood{ID: uuid.New(), UserID: uuid.New(), Score: i%10 + 1, Label: &label, Note: &note,
			Tags: []string{"work", "sleep"}, RecordedAt: at, CreatedAt: at, UpdatedAt: at}
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		body, err := json.Marshal(page)
		if err != nil {
			b.Fatal(err)
		}
		n = len(body)
	}
	b.SetBytes(int64(n))
}
