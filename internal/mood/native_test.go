package mood

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/migrations"
)

// moodColumns, which the native list reads, are the model's columns, in
// the order of its fields: a field added to Mood must be read there too.
func TestMoodColumnsAreTheModels(t *testing.T) {
	var cols []string
	typ := reflect.TypeFor[Mood]()
	for i := range typ.NumField() {
		tag := typ.Field(i).Tag.Get("bun")
		name, _, _ := cutComma(tag)
		if name == "" || typ.Field(i).Anonymous {
			continue
		}
		if name == "user_id" {
			continue // the query's own condition
		}
		cols = append(cols, name)
	}
	if !slices.Equal(cols, moodColumns) {
		t.Fatalf("Mood's columns %v, the native list reads %v", cols, moodColumns)
	}
}

func cutComma(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == ',' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// On Postgres the native list answers exactly what bun's query does, for
// every bound and for values that take the slow paths (escaped and
// non-ASCII tags, NULL label and note, the largest page).
func TestNativeListMatchesBun(t *testing.T) {
	ctx := context.Background()
	db := migratedPostgres(t)
	s := NewStore(db, nil)
	user, other := uuid.New(), uuid.New()
	for i, id := range []uuid.UUID{user, other} {
		if _, err := db.ExecContext(ctx, "INSERT INTO users (id, phone, created_at) VALUES (?, ?, now())", id, "+4474000000"+string(rune('0'+i))); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	tagSets := [][]string{nil, {"work"}, {`a "quoted" \ tag`, "é", "🙂"}, {"x", "y", "z", "w"}, {"<b>&"}}
	for i := range 130 {
		n := New{Score: i%10 + 1, Tags: tagSets[i%len(tagSets)]}
		if i%3 != 0 {
			label, note := "steady", "line one\nline two\t\u2028"
			n.Label, n.Note = &label, &note
		}
		at := start.Add(time.Duration(i/2) * time.Hour) // pairs share recorded_at: the id breaks the tie
		n.RecordedAt = &at
		if _, err := s.Create(ctx, user, n, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, other, New{Score: 5}, ""); err != nil { // another user's
		t.Fatal(err)
	}
	from, to := start.Add(10*time.Hour), start.Add(50*time.Hour)
	var cursor, next *Cursor
	compared := 0
	queries := []ListQuery{{Limit: 20}, {Limit: MaxLimit}, {Limit: 7, From: &from}, {Limit: 9, To: &to}, {Limit: 5, From: &from, To: &to}}
	for round := 0; round < 2; round++ {
		for _, q := range queries {
			q.Before = cursor
			var native, viaBun []Mood
			err := database.Native(ctx, db, func(c *pgx.Conn) error { return listNative(ctx, c, &native, user, q, q.Limit) })
			if err != nil {
				t.Fatal(err)
			}
			if err := s.listQuery(&viaBun, user, q, q.Limit).Scan(ctx); err != nil {
				t.Fatal(err)
			}
			for i := range viaBun {
				viaBun[i].normalize()
				native[i].normalize()
			}
			if len(native) > 0 {
				compared++
			}
			if !reflect.DeepEqual(native, viaBun) {
				t.Fatalf("%+v: native %d moods, bun %d; first native %+v, bun %+v", q, len(native), len(viaBun), first(native), first(viaBun))
			}
			if round == 0 && cursor == nil {
				// The second round continues after the middle of the
				// first page.
				c := CursorOf(native[len(native)/2])
				next = &c
			}
		}
		cursor = next
	}
	if compared < 8 {
		t.Fatalf("only %d non-empty pages compared", compared)
	}
}

func first(ms []Mood) any {
	if len(ms) == 0 {
		return nil
	}
	return ms[0]
}

// The list's statement answers in the format scanMood decodes by hand; a
// pgx that answered otherwise would only be slower, so this says so.
func TestNativeListDecodesTheWire(t *testing.T) {
	ctx := context.Background()
	db := migratedPostgres(t)
	err := database.Native(ctx, db, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, selectMoods+" LIMIT 1", database.StatementMode(c), [16]byte(uuid.New()))
		if err != nil {
			return err
		}
		defer rows.Close()
		for i, fd := range rows.FieldDescriptions() {
			if i != 2 && i != 3 && i != 4 && fd.Format != pgx.BinaryFormatCode {
				t.Errorf("column %s in format %d", moodColumns[i], fd.Format)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// migratedPostgres opens a fresh, migrated Postgres database.
func migratedPostgres(t testing.TB) *bun.DB {
	t.Helper()
	return migrated(t, database.Config{URL: testservices.NewDatabase(t)})
}

// migrated opens the database of cfg, closed at the test's end, with every
// migration applied.
func migrated(t testing.TB, cfg database.Config) *bun.DB {
	t.Helper()
	ctx := context.Background()
	db, _, err := database.Open(ctx, cfg, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	r, err := migrations.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Up(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}
