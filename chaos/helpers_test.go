//go:build chaos

package chaos_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/uptrace/bun/driver/pgdriver"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/soultest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	soultest.RemoveBinary()
	os.Exit(code)
}

// figures prints one scenario's closing numbers in the one-line format
// every test here shares.
func figures(t *testing.T, scenario string, sent, failures, lost int64, extra string) {
	t.Helper()
	t.Logf("chaos %-16s sent=%d failures=%d lost_writes=%d %s", scenario+":", sent, failures, lost, extra)
}

// Limits out of the way: the load here is one user's, far above 100/min.
var noLimits = []string{"RATE_LIMIT_DEFAULT_LIMIT=1000000", "RATE_LIMIT_SHIELD_EVENTS=1000000"}

// replica is one running binary.
type replica struct {
	base    string
	admin   string
	env     []string
	log     *soultest.LogBuffer
	cmd     *exec.Cmd
	done    chan struct{}
	client  *http.Client
	confDir string
}

// startReplica runs the built binary on the production Caddyfile (or
// caddyfile when not empty) with its own ports; env adds variables. It
// does not wait for the replica to serve: call waitServing.
func startReplica(t *testing.T, caddyfile string, env ...string) *replica {
	t.Helper()
	bin := soultest.Binary(t)
	port := soultest.FreePort(t)
	r := &replica{
		base:    "http://127.0.0.1:" + strconv.Itoa(port),
		admin:   "127.0.0.1:" + strconv.Itoa(soultest.FreePort(t)),
		log:     &soultest.LogBuffer{},
		client:  &http.Client{Timeout: 15 * time.Second},
		done:    make(chan struct{}),
		confDir: t.TempDir(),
	}
	config := filepath.Join(soultest.RepoRoot(), "Caddyfile")
	if caddyfile != "" {
		config = filepath.Join(r.confDir, "Caddyfile")
		if err := os.WriteFile(config, []byte(caddyfile), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"XDG_CONFIG_HOME=" + t.TempDir(),
		"XDG_DATA_HOME=" + t.TempDir(),
		"ADMIN_ADDRESS=" + r.admin,
		"SQLITE_PATH=" + filepath.Join(t.TempDir(), "soul.db"),
		"SITE_ADDRESS=" + r.base,
		"DEV_MODE=true",
		"LOG_LEVEL=INFO",
		"DATABASE_CONNECT_TIMEOUT=30s",
	}, env...)
	r.cmd = exec.Command(bin, "run", "--config", config, "--adapter", "caddyfile")
	r.cmd.Dir = soultest.RepoRoot()
	r.cmd.Env = r.env
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(os.Interrupt)
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// waitServing polls /healthz until it answers 200.
func (r *replica) waitServing(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := r.client.Get(r.base + "/healthz"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-r.done:
			t.Fatalf("replica on %s exited:\n%s", r.base, r.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica on %s did not answer /healthz:\n%s", r.base, r.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// health returns /healthz's status field, "" when it does not answer.
func (r *replica) health() string {
	resp, err := r.client.Get(r.base + "/healthz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.Status
}

// waitHealth polls /healthz until it reports want.
func (r *replica) waitHealth(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for r.health() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz: status %q, want %q", r.base, r.health(), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var phones atomic.Int32

// signIn creates an account with the local code provider's preview code
// and returns its access token.
func (r *replica) signIn(t *testing.T) string {
	t.Helper()
	phone := fmt.Sprintf("+4474003%05d", phones.Add(1))
	var sent soulauth.OTPSent
	r.postJSON(t, soulauth.PathOTPRequest, map[string]string{"phone": phone}, &sent)
	var pair soulauth.TokenPair
	r.postJSON(t, soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": sent.PreviewCode}, &pair)
	return pair.AccessToken
}

func (r *replica) postJSON(t *testing.T, path string, in, out any) {
	t.Helper()
	b, _ := json.Marshal(in)
	resp, err := r.client.Post(r.base+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatal(err)
	}
}

// moodRequest builds POST /api/moods with a note that names the write and
// the Idempotency-Key a well-behaved client sends.
func moodRequest(base, token, note string) *http.Request {
	body := `{"score":3,"note":"` + note + `"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/api/moods", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", note)
	// Replayable: Go's transport may resend it on a reused connection the
	// server closed first, which the key makes safe.
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewBufferString(body)), nil }
	return req
}

// moodID reads the id of a created mood.
func moodID(body []byte) string {
	var m struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &m)
	return m.ID
}

// openSQL opens a plain connection to a Postgres URL for checks.
func openSQL(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pg", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// notesInDB returns how many times each note is stored.
func notesInDB(t *testing.T, db *sql.DB) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT note FROM moods WHERE note IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := map[string]int{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		n[s]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// idsInDB returns the ids of every stored mood.
func idsInDB(t *testing.T, db *sql.DB) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT id::text FROM moods")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ids := map[string]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		ids[s] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
