package mood

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/database"
)

// The summary reads one range of moods_user_recorded_idx on Postgres, with
// many users' moods in the table, both as planned for its values and as
// the generic plan a prepared statement may switch to: no sequential scan.
// Each user has a year of moods (1,000, one every 8 h 46 min) with tags.
// SOUL_TEST_PLAN_ROWS sets the table's size (default 20,000; the
// README's figures are of 1,000,000); the plans are logged.
func TestSummaryQueryPlan(t *testing.T) {
	rows := planRows(t)
	ctx := context.Background()
	db := migratedPostgres(t)
	fillYears(t, db, rows)

	user := uuid.MustParse("00000000-0000-4000-8000-000000000001")
	// Half of each user's year: with the whole year asked for, every index
	// led by user_id reads the same rows, and the planner may pick any
	// (the change feed's among them); a part of it must be read as a range
	// of recorded_at.
	q, err := ParseSummaryQuery(url.Values{"from": {"2026-06-01T00:00:00Z"}, "to": {"2026-12-01T00:00:00Z"}, "tz": {"Europe/London"}})
	if err != nil {
		t.Fatal(err)
	}
	bounds, labels, _ := segments(q.From, q.To, q.Location, q.Bucket)
	one := make([]int32, len(labels))
	for i, l := range labels {
		one[i] = int32(l + 1)
	}
	// PREPARE as StatementMode does, so that force_generic_plan shows
	// the plan Postgres may cache for it after five executions.
	edges := make([]string, len(bounds))
	for i, b := range bounds {
		edges[i] = `"` + b.Format(time.RFC3339Nano) + `"`
	}
	ints := make([]string, len(one))
	for i, l := range one {
		ints[i] = strconv.Itoa(int(l))
	}
	execute := "EXECUTE summary_plan('" + user.String() + "', '{" + strings.Join(edges, ",") + "}', '{" + strings.Join(ints, ",") + "}', '" +
		bounds[0].Format(time.RFC3339Nano) + "', '" + bounds[len(bounds)-1].Format(time.RFC3339Nano) + "')"
	for _, mode := range []string{"auto", "force_generic_plan"} {
		var plan []string
		err := database.Native(ctx, db, func(c *pgx.Conn) error {
			if _, err := c.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
				return err
			}
			defer func() { _, _ = c.Exec(ctx, "RESET plan_cache_mode") }()
			if _, err := c.Exec(ctx, "PREPARE summary_plan(uuid, timestamptz[], int[], timestamptz, timestamptz) AS "+summaryPostgres); err != nil {
				return err
			}
			defer func() { _, _ = c.Exec(ctx, "DEALLOCATE summary_plan") }()
			rows, err := c.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+execute)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					return err
				}
				plan = append(plan, line)
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(plan, "\n")
		t.Logf("plan_cache_mode=%s, half a year of day buckets in Europe/London:\n%s", mode, text)
		if !strings.Contains(text, "moods_user_recorded_idx") || strings.Contains(text, "Seq Scan on moods") {
			t.Errorf("plan_cache_mode=%s: not a range of the index:\n%s", mode, text)
		}
	}
	got, err := NewStore(db, nil).Summary(ctx, user, q)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range got.Buckets {
		n += b.Count
	}
	tagged := 0
	for _, b := range got.Buckets {
		tagged += len(b.TopTags)
	}
	if n < 450 || tagged < 150 {
		t.Fatalf("the summary counted %d moods of half a year, %d top tags", n, tagged)
	}
}

// fillYears fills moods with users of a year of moods each (1,000, one
// every 8 h 46 min, up to 1 December 2026, tags varied), rows in all.
func fillYears(t testing.TB, db *bun.DB, rows int) {
	t.Helper()
	ctx := context.Background()
	perUser := 1000
	users := max(rows/perUser, 10)
	if _, err := db.ExecContext(ctx, `
		INSERT INTO users (id, phone, created_at)
		SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(u), 12, '0'))::uuid, '+4474004' || lpad(u::text, 5, '0'), now()
		FROM generate_series(1, ?) AS u`, users); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	const chunk = 100_000
	for lo := 0; lo < perUser*users; lo += chunk {
		hi := min(lo+chunk, perUser*users)
		if _, err := db.ExecContext(ctx, `
			INSERT INTO moods (id, user_id, score, tags, recorded_at, created_at, updated_at)
			SELECT gen_random_uuid(),
			       ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % ?), 12, '0'))::uuid,
			       1 + i % 10,
			       (ARRAY['[]', '["work"]', '["sleep","work"]', '["family","sleep","sport"]'])[1 + (i / ?) % 4]::jsonb,
			       timestamptz '2026-12-01 00:00:00+00' - (i / ?) * interval '526 minutes',
			       now(), now()
			FROM generate_series(?, ? - 1) AS i`, users, users, users, lo, hi); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE moods"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d moods of %d users inserted and analyzed in %v", perUser*users, users, time.Since(start).Round(time.Millisecond))

}

// BenchmarkSummaryPostgres: a year of day buckets for one user of 20, by
// the prepared statement (database.StatementMode) and by the simple
// protocol bun uses, values in the text.
func BenchmarkSummaryPostgres(b *testing.B) {
	ctx := context.Background()
	db := migratedPostgres(b)
	fillYears(b, db, 20_000)
	q, err := ParseSummaryQuery(url.Values{"from": {"2025-12-01T00:00:00Z"}, "to": {"2026-12-01T00:00:00Z"}, "tz": {"Europe/London"}})
	if err != nil {
		b.Fatal(err)
	}
	user := uuid.MustParse("00000000-0000-4000-8000-000000000001")
	for _, mode := range []struct {
		name string
		mode pgx.QueryExecMode
	}{{"prepared", pgx.QueryExecModeCacheStatement}, {"simple", pgx.QueryExecModeSimpleProtocol}} {
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				bounds, labels, dates := segments(q.From, q.To, q.Location, q.Bucket)
				acc := make([]summaryRow, len(dates))
				if err := database.Native(ctx, db, func(c *pgx.Conn) error {
					return summaryNative(ctx, c, acc, user, bounds, labels, mode.mode)
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// On SQLite the spans are the outer loop and each reads one range of the
// index: never a scan of the user's moods per span, nor of the spans per
// mood.
func TestSummaryQueryPlanSQLite(t *testing.T) {
	t.Parallel()
	db := migratedSQLite(t)
	rows, err := db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+summarySQLite,
		`[[0,"2026-01-01 00:00:00+00:00","2026-01-02 00:00:00+00:00"]]`, uuid.New())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notUsed int
		var detail string
		if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "SEARCH moods USING INDEX moods_user_recorded_idx (user_id=? AND recorded_at>? AND recorded_at<?)") ||
		strings.Index(text, "SCAN sp") > strings.Index(text, "SEARCH moods") {
		t.Fatalf("plan:\n%s", text)
	}
}
