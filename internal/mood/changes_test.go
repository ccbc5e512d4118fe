package mood

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/soulapp/soul/internal/database"
)

// On Postgres the feed's pgx path reads exactly what bun's does: moods
// with NULL and escaped values, tombstones, a page boundary, a cursor.
func TestNativeChangesMatchBun(t *testing.T) {
	ctx := context.Background()
	db := migratedPostgres(t)
	s := NewStore(db, nil)
	user := uuid.New()
	if _, err := db.ExecContext(ctx, "INSERT INTO users (id, phone, created_at) VALUES (?, ?, now())", user, "+447400000077"); err != nil {
		t.Fatal(err)
	}
	label, note := `quote " é`, "line\nbreak"
	var ids []uuid.UUID
	for i := range 5 {
		n := New{Score: i + 1, Tags: []string{"a", `b\c`}}
		if i%2 == 0 {
			n.Label, n.Note = &label, &note
		}
		c, err := s.Create(ctx, user, n, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.Mood.ID)
	}
	if _, err := s.Update(ctx, user, ids[0], Patch{Score: Optional[int]{Set: true, Value: 9}}, Conditions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, user, ids[1], Conditions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "UPDATE mood_sync SET purged_seq = 3 WHERE user_id = ?", user); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after SyncCursor
		check bool
		limit int
	}{{SyncCursor{}, false, 100}, {SyncCursor{}, false, 2}, {SyncCursor{Seq: 2, ID: ids[1]}, true, 3}, {SyncCursor{Seq: 99}, true, 3}} {
		var native, viaBun []changeRow
		var pn, pb int64
		err := database.Native(ctx, db, func(c *pgx.Conn) error {
			return changesNative(ctx, c, &native, &pn, user, tc.after, tc.check, tc.limit)
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.changesBun(ctx, &viaBun, &pb, user, tc.after, tc.check, tc.limit); err != nil {
			t.Fatal(err)
		}
		if len(native) == 0 && tc.after.Seq < 99 {
			t.Errorf("%+v: no rows", tc)
		}
		if got, want := rowsText(native), rowsText(viaBun); got != want || pn != pb {
			t.Errorf("%+v:\nnative %s (purged %d)\n   bun %s (purged %d)", tc, got, pn, want, pb)
		}
	}
}

// rowsText prints rows with every time in UTC, as both paths must agree
// on the instant, not on the zone a driver chose.
func rowsText(rows []changeRow) string {
	utc := func(t *time.Time) string {
		if t == nil {
			return "nil"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	out := ""
	for _, r := range rows {
		deref := func(p any) any {
			v := reflect.ValueOf(p)
			if v.IsNil() {
				return nil
			}
			return v.Elem().Interface()
		}
		out += fmt.Sprintf("{%s %d %d %s %v %v %v %q %s %s %s %v}", r.ID, r.ChangeSeq, r.Deleted, utc(r.DeletedAt),
			deref(r.Score), deref(r.Label), deref(r.Note), r.Tags, utc(r.RecordedAt), utc(r.CreatedAt), utc(r.UpdatedAt), deref(r.Version))
	}
	return out
}
