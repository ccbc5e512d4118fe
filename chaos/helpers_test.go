//go:build chaos

package chaos_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/uptrace/bun/driver/pgdriver"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/soultest"
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
var noLimits = []string{"RATE_LIMIT_DEFAULT_LIMIT=1000000", "RATE_LIMIT_SHIELD_EVENTS=1000000",
	"OTP_SEND_BUDGET_HOURLY=1000000", "OTP_SEND_BUDGET_HOURLY_PER_COUNTRY=1000000"}

// replica is one running binary.
type replica struct {
	base    string
	admin   string
	env     []string
	log     *soultest.LogBuffer
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error // what Wait returned; read it only after done is closed
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
	go func() { r.exitErr = r.cmd.Wait(); close(r.done) }()
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

// wire is how one request went on the wire, from net/http's trace hooks.
// net/http resends a request it may replay (no body, or GetBody with an
// Idempotency-Key, as moodRequest builds) when a kept-alive connection
// turns out closed by the server before any answer; tries counts the
// connections it was written to, so a resend shows as tries > 1.
type wire struct {
	mu     sync.Mutex
	tries  int
	reused bool // the last connection came from the idle pool
	wrote  bool // the request was written in full on the last one
}

// traced returns req with trace hooks that fill a wire.
func traced(req *http.Request) (*http.Request, *wire) {
	w := &wire{}
	trace := &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			w.mu.Lock()
			w.tries++
			w.reused, w.wrote = info.Reused, false
			w.mu.Unlock()
		},
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			w.mu.Lock()
			w.wrote = info.Err == nil
			w.mu.Unlock()
		},
	}
	return req.WithContext(httptrace.WithClientTrace(req.Context(), trace)), w
}

// resent says whether net/http wrote the request on more than one connection.
func (w *wire) resent() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tries > 1
}

func (w *wire) String() string {
	if w == nil {
		return "no trace"
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	conn := "a new connection"
	if w.reused {
		conn = "a kept-alive connection"
	}
	if w.tries == 0 {
		return "no connection"
	}
	return fmt.Sprintf("on %s (connection %d of the request), request written in full: %t", conn, w.tries, w.wrote)
}

// maxDuration keeps the largest duration stored into it.
type maxDuration struct{ v atomic.Int64 }

func (m *maxDuration) observe(d time.Duration) {
	for {
		old := m.v.Load()
		if int64(d) <= old || m.v.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

func (m *maxDuration) get() time.Duration { return time.Duration(m.v.Load()) }

// drainingSeconds is the shortest deploy.drainingSeconds of railway.json
// (the default and every environment's): how long Railway lets a replaced
// instance finish its requests after SIGTERM before it kills it.
func drainingSeconds(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(soultest.RepoRoot(), "railway.json"))
	if err != nil {
		t.Fatal(err)
	}
	type deploy struct {
		DrainingSeconds *int `json:"drainingSeconds"`
	}
	var cfg struct {
		Deploy       deploy `json:"deploy"`
		Environments map[string]struct {
			Deploy deploy `json:"deploy"`
		} `json:"environments"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("railway.json: %v", err)
	}
	if cfg.Deploy.DrainingSeconds == nil {
		t.Fatal("railway.json: no deploy.drainingSeconds")
	}
	least := *cfg.Deploy.DrainingSeconds
	for _, env := range cfg.Environments {
		if d := env.Deploy.DrainingSeconds; d != nil && *d < least {
			least = *d
		}
	}
	if least <= 0 {
		t.Fatalf("railway.json: drainingSeconds %d", least)
	}
	return time.Duration(least) * time.Second
}

// metric sums the samples of a Prometheus counter on the replica's admin
// endpoint whose labels include every name="value" pair of labels.
func (r *replica) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := r.client.Get("http://" + r.admin + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("/metrics: %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// requestIDHeader names one request in the replica's access log: Caddy
// writes a line with the request's headers for every request its handlers
// served, once they return (the production Caddyfile drops only the
// credentials from it). A request whose id is not in the log once the
// replica has answered everything else never reached a handler.
const requestIDHeader = "X-Request-Id"

// handled says whether the replica's access log has a line for the
// request with this X-Request-Id.
func (r *replica) handled(id string) bool {
	return strings.Contains(r.log.String(), `"`+requestIDHeader+`":["`+id+`"]`)
}

// unansweredNewConnection says whether err is a connection the server
// closed or reset without any answer, and one net/http could not resend by
// itself: a new connection (a kept-alive one it resends on when it may
// replay the request), or the handshake itself reset. A timeout is not
// one: then the server held the request.
func unansweredNewConnection(err error, w *wire) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.reused
}

// tcpMigrateReq reads net.ipv4.tcp_migrate_req, "" when it cannot.
func tcpMigrateReq() string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
