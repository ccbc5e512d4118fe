package mood

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The list query stays one range of the (user_id, recorded_at DESC, id
// DESC) index with many moods in the table: no sequential scan, no sort,
// whatever the bounds. SOUL_TEST_PLAN_ROWS sets the table's size (default
// 20,000, enough for the planner to prefer the index; the design was
// checked with 1,000,000).
func TestListQueryPlan(t *testing.T) {
	rows := planRows(t)
	ctx := context.Background()
	db := migratedPostgres(t)

	// Users of 1,000 moods each, one every ten minutes.
	perUser := 1000
	users := max(rows/perUser, 10)
	if _, err := db.ExecContext(ctx, `
		INSERT INTO users (id, phone, created_at)
		SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(u), 12, '0'))::uuid, '+4474003' || lpad(u::text, 5, '0'), now()
		FROM generate_series(1, ?) AS u`, users); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// In chunks: each statement stays within the driver's read timeout.
	const chunk = 100_000
	for lo := 0; lo < perUser*users; lo += chunk {
		hi := min(lo+chunk, perUser*users)
		if _, err := db.ExecContext(ctx, `
			INSERT INTO moods (id, user_id, score, tags, recorded_at, created_at, updated_at)
			SELECT gen_random_uuid(),
			       ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % ?), 12, '0'))::uuid,
			       1 + i % 10, '[]',
			       timestamptz '2026-01-01 00:00:00+00' - (i / ?) * interval '10 minutes',
			       now(), now()
			FROM generate_series(?, ? - 1) AS i`, users, users, lo, hi); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, "ANALYZE moods"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d moods of %d users inserted and analyzed in %v", perUser*users, users, time.Since(start).Round(time.Millisecond))

	user := uuid.MustParse("00000000-0000-4000-8000-000000000001")
	// Bounds inside the user's span of moods, so each query finds some.
	last := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	span := time.Duration(perUser) * 10 * time.Minute
	from, to := last.Add(-span*3/4), last.Add(-span/4)
	cursor := Cursor{RecordedAt: last.Add(-span / 2), ID: uuid.Max}
	store := NewStore(db, nil)
	for _, c := range []struct {
		name string
		q    ListQuery
	}{
		{"first page", ListQuery{Limit: DefaultLimit}},
		{"after a cursor", ListQuery{Limit: DefaultLimit, Before: &cursor}},
		{"from and to", ListQuery{Limit: MaxLimit, From: &from, To: &to}},
		{"cursor within bounds", ListQuery{Limit: DefaultLimit, Before: &cursor, From: &from, To: &to}},
	} {
		var dst []Mood
		query := store.listQuery(&dst, user, c.q, c.q.Limit).String()
		var plan []string
		if err := db.NewRaw("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+query).Scan(ctx, &plan); err != nil {
			t.Fatal(err)
		}
		text := strings.Join(plan, "\n")
		t.Logf("%s:\n%s\n%s", c.name, query, text)
		if !strings.Contains(text, "Index Scan using moods_user_recorded_idx") || strings.Contains(text, "Seq Scan") || strings.Contains(text, "Sort") {
			t.Errorf("%s: not one index range scan:\n%s", c.name, text)
		}
	}
}

// planRows is the size of the table a plan test fills: 20,000 moods, or
// SOUL_TEST_PLAN_ROWS; such a test is skipped with -short.
func planRows(t *testing.T) int {
	t.Helper()
	if testing.Short() {
		t.Skip("fills a table")
	}
	s := os.Getenv("SOUL_TEST_PLAN_ROWS")
	if s == "" {
		return 20_000
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("SOUL_TEST_PLAN_ROWS=%q", s)
	}
	return n
}
