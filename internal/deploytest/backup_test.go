package deploytest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/migrations"
)

// tables are the ones a restore must bring back whole.
var tables = []string{"users", "sessions", "otp_challenges", "moods", "idempotency_keys", "soul_migrations"}

// snapshot is what a backup must preserve: row counts and a checksum of
// every mood, column by column.
type snapshot struct {
	counts map[string]int
	moods  string
}

func takeSnapshot(t *testing.T, url string) snapshot {
	t.Helper()
	db, err := sql.Open("pg", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := snapshot{counts: map[string]int{}}
	for _, tbl := range tables {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+tbl).Scan(&n); err != nil {
			t.Fatalf("counting %s: %v", tbl, err)
		}
		s.counts[tbl] = n
	}
	if err := db.QueryRowContext(ctx, `SELECT md5(string_agg(m::text, '|' ORDER BY m.id)) FROM moods m`).Scan(&s.moods); err != nil {
		t.Fatalf("moods checksum: %v", err)
	}
	return s
}

// seed migrates the database and fills it the way the API would.
func seed(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, _, err := database.Open(ctx, database.Config{URL: url}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := migrations.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Up(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	for _, q := range []string{
		`INSERT INTO users (id, phone, created_at)
		 SELECT gen_random_uuid(), '+1555555' || lpad(i::text, 4, '0'), now() - i * interval '1 day'
		 FROM generate_series(1, 25) i`,
		`INSERT INTO sessions (id, user_id, token_hash, created_at, last_used_at, expires_at)
		 SELECT gen_random_uuid(), id, sha256(convert_to(phone, 'UTF8')), now(), now(), now() + interval '30 days' FROM users`,
		`INSERT INTO otp_challenges (phone, code_hash, expires_at, created_at)
		 VALUES ('+15555550001', '\xdeadbeef', now() + interval '5 minutes', now())`,
		// Every column kind: NULLs, non-ASCII text, JSON tags, timestamps.
		`INSERT INTO moods (id, user_id, score, label, note, tags, recorded_at, created_at, updated_at)
		 SELECT gen_random_uuid(), u.id, 1 + (i % 10),
		        CASE WHEN i % 3 = 0 THEN NULL ELSE 'calm ' || i END,
		        CASE WHEN i % 4 = 0 THEN NULL ELSE 'Über-ruhig, 静か — día ' || i END,
		        jsonb_build_array('tag' || (i % 5), 'morning'),
		        now() - i * interval '1 hour', now(), now()
		 FROM users u, generate_series(1, 40) i`,
		`INSERT INTO idempotency_keys (user_id, key, request_hash, mood_id, created_at)
		 SELECT user_id, 'key-' || id, '\x01', id, now() FROM moods LIMIT 10`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("seeding: %v\n%s", err, q)
		}
	}
}

// script runs one of scripts/, with DATABASE_URL and the test server's
// Postgres tools, and returns its stdout and stderr.
func script(t *testing.T, dbURL string, name string, args ...string) (string, string, error) {
	t.Helper()
	bindir := os.Getenv(testservices.EnvPGBinDir)
	if bindir == "" {
		t.Skipf("%s is unset (run `make test`)", testservices.EnvPGBinDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(), "scripts", name), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PG_BINDIR=" + bindir, "DATABASE_URL=" + dbURL}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func TestBackupRestores(t *testing.T) {
	src := testservices.NewDatabase(t)
	seed(t, src)
	before := takeSnapshot(t, src)
	if before.counts["moods"] != 1000 || before.counts["users"] != 25 {
		t.Fatalf("seed went wrong: %v", before.counts)
	}

	// The old stack's URL form, as Railway variables may still hold it.
	dir := t.TempDir()
	out, errOut, err := script(t, strings.Replace(src, "postgres://", "postgresql+psycopg2://", 1), "backup.sh", dir)
	if err != nil {
		t.Fatalf("backup.sh: %v\n%s", err, errOut)
	}
	file := strings.TrimSpace(out)
	if filepath.Dir(file) != dir || !strings.HasPrefix(filepath.Base(file), "soul-") || !strings.HasSuffix(file, ".dump") {
		t.Fatalf("backup.sh printed %q, want %s/soul-<time>.dump", file, dir)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.partial")); len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}

	// Changes after the backup must not survive the restore.
	db, err := sql.Open("pg", src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM moods WHERE score = 1`); err != nil {
		t.Fatal(err)
	}

	dst := testservices.NewDatabase(t)
	if _, errOut, err := script(t, dst, "restore.sh", file); err != nil {
		t.Fatalf("restore.sh into an empty database: %v\n%s", err, errOut)
	}
	if after := takeSnapshot(t, dst); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("restored database differs:\nbefore %v\nafter  %v", before, after)
	}

	t.Run("refuses a target with data", func(t *testing.T) {
		_, errOut, err := script(t, src, "restore.sh", file)
		if err == nil || !strings.Contains(errOut, "--overwrite") {
			t.Fatalf("restore.sh over data without --overwrite: %v\n%s", err, errOut)
		}
		if takeSnapshot(t, src).counts["moods"] >= before.counts["moods"] {
			t.Fatal("the refused restore changed the target")
		}
	})

	t.Run("overwrites with --overwrite", func(t *testing.T) {
		if _, errOut, err := script(t, src, "restore.sh", "--overwrite", file); err != nil {
			t.Fatalf("restore.sh --overwrite: %v\n%s", err, errOut)
		}
		if after := takeSnapshot(t, src); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("restored database differs:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		notDump := filepath.Join(t.TempDir(), "x.dump")
		if err := os.WriteFile(notDump, []byte("not a dump"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, errOut, err := script(t, testservices.NewDatabase(t), "restore.sh", notDump); err == nil || !strings.Contains(errOut, "not a pg_dump") {
			t.Errorf("restore.sh of a non-dump: %v\n%s", err, errOut)
		}
		if _, errOut, err := script(t, "", "backup.sh", t.TempDir()); err == nil || !strings.Contains(errOut, "DATABASE_URL is not set") {
			t.Errorf("backup.sh without DATABASE_URL: %v\n%s", err, errOut)
		}
	})
}
