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
// encoded the way soul_moods writes it (mood.AppendList into a pooled
// buffer), and by encoding/json's reflection for comparison.
func BenchmarkEncodeMoodList(b *testing.B) {
	label, note := "steady", "a walk by the river after work"
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	page := make([]mood.Mood, 20)
	for i := range page {
		page[i] = mood.Mood{ID: uuid.New(), UserID: uuid.New(), Score: i%10 + 1, Label: &label, Note: &note,
			Tags: []string{"work", "sleep"}, RecordedAt: at, CreatedAt: at, UpdatedAt: at}
	}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			buf := mood.ListBuffer()
			*buf = mood.AppendList(*buf, page)
			n = len(*buf)
			mood.PutListBuffer(buf)
		}
		b.SetBytes(int64(n))
	})
	// plainMood has Mood's fields and tags without its MarshalJSON.
	type plainMood mood.Mood
	plain := make([]plainMood, len(page))
	for i := range page {
		plain[i] = plainMood(page[i])
	}
	b.Run("reflection", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			body, err := json.Marshal(plain)
			if err != nil {
				b.Fatal(err)
			}
			n = len(body)
		}
		b.SetBytes(int64(n))
	})
}
