package deploytest

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

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

// account is a user signed in through the API.
type account struct {
	phone        string
	accessToken  string
	refreshToken string
}

// signIn signs phone in with the DEV_MODE preview code.
func signIn(t *testing.T, srv *soultest.Server, phone string) account {
	t.Helper()
	resp := srv.Do(http.MethodPost, soulauth.PathOTPRequest, map[string]string{"phone": phone})
	soultest.WantStatus(t, resp, http.StatusOK)
	var sent soulauth.OTPSent
	resp.JSON(t, &sent)
	resp = srv.Do(http.MethodPost, soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": sent.PreviewCode})
	soultest.WantStatus(t, resp, http.StatusOK)
	var pair soulauth.TokenPair
	resp.JSON(t, &pair)
	return account{phone: phone, accessToken: pair.AccessToken, refreshToken: pair.RefreshToken}
}

func (a account) do(srv *soultest.Server, method, path string, body any, headers ...string) *soultest.Response {
	return srv.Do(method, path, body, append([]string{"Authorization", "Bearer " + a.accessToken}, headers...)...)
}

// readBack is what the API answers each account for its profile and all
// its moods, byte for byte.
func readBack(t *testing.T, srv *soultest.Server, accounts []account) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, a := range accounts {
		for _, path := range []string{soulauth.PathMe, "/api/moods?limit=100"} {
			resp := a.do(srv, http.MethodGet, path, nil)
			soultest.WantStatus(t, resp, http.StatusOK)
			got[a.phone+" "+path] = string(resp.Body)
		}
	}
	return got
}

// diff names the answers that differ.
func diff(want, got map[string]string) string {
	var d []string
	for k, w := range want {
		if got[k] != w {
			d = append(d, fmt.Sprintf("%s:\n  before %s\n  after  %s", k, w, got[k]))
		}
	}
	return strings.Join(d, "\n")
}

// adminExec runs one statement on the shared test Postgres' maintenance
// database.
func adminExec(t *testing.T, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("pg", testservices.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	db, err := sql.Open("pg", testservices.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// The whole drill through the API: accounts and moods written over HTTP,
// backed up, the database dropped and restored, and the same answers read
// back over HTTP with the tokens issued before the backup.
func TestBackupRestores(t *testing.T) {
	if os.Getenv(testservices.EnvPGBinDir) == "" {
		t.Skipf("%s is unset (run `make test`)", testservices.EnvPGBinDir)
	}
	dbURL := testservices.NewDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	// The same key on every start, so tokens issued before the backup are
	// still good after the restore.
	opts := soultest.Options{DatabaseURL: dbURL, Env: map[string]string{"SECRET_KEY": soultest.RandomHex(32)}}
	srv := soultest.Start(t, opts)

	alice := signIn(t, srv, "+447400200001")
	bob := signIn(t, srv, "+447400200002")
	accounts := []account{alice, bob}
	// Every kind of field: absent and null label and note, non-ASCII text,
	// tags merged and lower-cased, explicit and default recorded_at, and an
	// Idempotency-Key record.
	day := time.Now().UTC().Add(-72 * time.Hour).Truncate(time.Second)
	writes := []struct {
		who  account
		body map[string]any
		key  string
	}{
		{alice, map[string]any{"score": 7, "label": "calm", "note": "Über-ruhig, 静か — día 1", "tags": []string{"Morning", "walk", "morning"}, "recorded_at": day.Format(time.RFC3339)}, ""},
		{alice, map[string]any{"score": 2, "label": nil, "note": "a \"quoted\" line\nand a second", "recorded_at": day.Add(time.Hour).Format(time.RFC3339)}, "alice-2"},
		{alice, map[string]any{"score": 10, "tags": []string{}, "recorded_at": day.Add(2 * time.Hour).Format(time.RFC3339)}, ""},
		{alice, map[string]any{"score": 5, "label": "tired", "recorded_at": day.Add(3 * time.Hour).Format(time.RFC3339Nano)}, "alice-4"},
		{alice, map[string]any{"score": 1}, ""},
		{bob, map[string]any{"score": 4, "note": "🙂 emoji and tabs\there", "tags": []string{"work"}, "recorded_at": day.Add(30 * time.Minute).Format(time.RFC3339)}, ""},
		{bob, map[string]any{"score": 9, "label": "great", "note": nil, "recorded_at": day.Add(90 * time.Minute).Format(time.RFC3339)}, "bob-2"},
		{bob, map[string]any{"score": 6}, ""},
	}
	var bobsFirst string
	for i, w := range writes {
		var h []string
		if w.key != "" {
			h = []string{"Idempotency-Key", w.key}
		}
		resp := w.who.do(srv, http.MethodPost, "/api/moods", w.body, h...)
		soultest.WantStatus(t, resp, http.StatusCreated)
		if i == 5 {
			bobsFirst = resp.Header.Get("Location")
		}
	}
	before := readBack(t, srv, accounts)

	// The old stack's URL form, as Railway variables may still hold it.
	dir := t.TempDir()
	out, errOut, err := script(t, strings.Replace(dbURL, "postgres://", "postgresql+psycopg2://", 1), "backup.sh", dir)
	if err != nil {
		t.Fatalf("backup.sh: %v\n%s", err, errOut)
	}
	t.Logf("scripts/backup.sh:\n%s%s", errOut, out)
	file := strings.TrimSpace(out)
	if filepath.Dir(file) != dir || !strings.HasPrefix(filepath.Base(file), "soul-") || !strings.HasSuffix(file, ".dump") {
		t.Fatalf("backup.sh printed %q, want %s/soul-<time>.dump", file, dir)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.partial")); len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}

	// Changes after the backup must not survive the restore.
	soultest.WantStatus(t, alice.do(srv, http.MethodPost, "/api/moods", map[string]any{"score": 3, "note": "after the backup"}), http.StatusCreated)
	soultest.WantStatus(t, bob.do(srv, http.MethodDelete, bobsFirst, nil), http.StatusNoContent)
	if after := readBack(t, srv, accounts); diff(before, after) == "" {
		t.Fatal("the writes after the backup changed nothing")
	}

	// Lose the database: stop the API, then drop it with its connections.
	if err := caddy.Stop(); err != nil {
		t.Fatalf("stopping the server: %v", err)
	}
	adminExec(t, `DROP DATABASE "`+dbName+`" WITH (FORCE)`)
	if databaseExists(t, dbName) {
		t.Fatal("the database is still there")
	}
	adminExec(t, `CREATE DATABASE "`+dbName+`"`)
	_, errOut, err = script(t, dbURL, "restore.sh", file)
	if err != nil {
		t.Fatalf("restore.sh into the empty database: %v\n%s", err, errOut)
	}
	t.Logf("scripts/restore.sh:\n%s", errOut)

	srv = soultest.Start(t, opts)
	if d := diff(before, readBack(t, srv, accounts)); d != "" {
		t.Fatalf("the API answers differently after the restore:\n%s", d)
	}
	t.Logf("restored: %d moods of %d accounts read back through the API as before the backup, with the tokens issued before it", len(writes), len(accounts))

	t.Run("refuses a target with data", func(t *testing.T) {
		soultest.WantStatus(t, alice.do(srv, http.MethodPost, "/api/moods", map[string]any{"score": 8}), http.StatusCreated)
		changed := readBack(t, srv, accounts)
		_, errOut, err := script(t, dbURL, "restore.sh", file)
		if err == nil || !strings.Contains(errOut, "--overwrite") {
			t.Fatalf("restore.sh over data without --overwrite: %v\n%s", err, errOut)
		}
		if d := diff(changed, readBack(t, srv, accounts)); d != "" {
			t.Fatalf("the refused restore changed the data:\n%s", d)
		}
	})

	t.Run("overwrites with --overwrite while the API runs", func(t *testing.T) {
		if _, errOut, err := script(t, dbURL, "restore.sh", "--overwrite", file); err != nil {
			t.Fatalf("restore.sh --overwrite: %v\n%s", err, errOut)
		}
		if d := diff(before, readBack(t, srv, accounts)); d != "" {
			t.Fatalf("the API answers differently after the restore:\n%s", d)
		}
	})

	t.Run("sessions come back", func(t *testing.T) {
		resp := srv.Do(http.MethodPost, soulauth.PathRefresh, map[string]string{"refresh_token": bob.refreshToken})
		soultest.WantStatus(t, resp, http.StatusOK)
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
