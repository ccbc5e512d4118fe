// Package soultest runs the real SOUL Caddy (the production Caddyfile, our
// modules, Caddy's standard ones) inside a test process, on Postgres or the
// embedded SQLite, so integration tests exercise exactly what ships.
//
// Caddy keeps one running config per process: tests that start a server
// must not run in parallel with each other.
package soultest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile" // the caddyfile adapter
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/soulapp/soul/api"
	_ "github.com/soulapp/soul/caddymodules/all"
	"github.com/soulapp/soul/internal/contract"
	"github.com/soulapp/soul/internal/problem"
	"github.com/soulapp/soul/internal/testservices"
)

// Database selects the database of a test server.
type Database string

// The two databases the suite runs on, and Postgres behind PgBouncer.
const (
	SQLite   Database = "sqlite"
	Postgres Database = "postgres"
	// PgBouncer is a fresh Postgres database reached through a PgBouncer
	// of the test's own in transaction pooling mode, with
	// DATABASE_PREPARED_STATEMENTS=false, as a deployment behind
	// PgBouncer before 1.21 runs.
	PgBouncer Database = "pgbouncer"
)

// Databases lists both, for suites that run on each.
var Databases = []Database{SQLite, Postgres}

// DatabasesAndPgBouncer adds PgBouncer to Databases, for the main flows
// (sign-in, moods, export, account deletion, migrations at start): a
// pooler that moves each transaction to any server connection breaks
// whatever leans on a session, and those flows are where it would show.
var DatabasesAndPgBouncer = []Database{SQLite, Postgres, PgBouncer}

// Options configure a test server.
type Options struct {
	Database Database
	// DatabaseURL overrides the fresh Postgres database (e.g. a private
	// server the test stops).
	DatabaseURL string
	// Redis uses the shared test Redis; RedisURL overrides it.
	Redis    bool
	RedisURL string
	// Env sets further environment variables (they win over the defaults).
	Env map[string]string
	// Caddyfile replaces the repository's Caddyfile.
	Caddyfile string
	// Unchecked says why this server's exchanges are not checked against
	// the OpenAPI document (a Caddyfile with routes of its own, say). When
	// empty, every exchange through Client is checked and a breach fails
	// the test.
	Unchecked string
}

// Server is a SOUL Caddy running in this process.
type Server struct {
	BaseURL string
	// DatabaseURL is the Postgres database of the server, reached
	// directly even when the server goes through PgBouncer, for a test's
	// own checks.
	DatabaseURL string
	SQLitePath  string
	// AdminAddr is the admin endpoint (host:port), which serves /metrics.
	AdminAddr string
	Client    *http.Client
	t         testing.TB
}

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), ".."))
}

// Start loads the config and waits until /healthz answers. It stops Caddy
// when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	httpPort, adminPort := FreePort(t), FreePort(t)
	s := &Server{
		BaseURL:   "http://127.0.0.1:" + strconv.Itoa(httpPort),
		AdminAddr: "127.0.0.1:" + strconv.Itoa(adminPort),
		Client:    &http.Client{Timeout: 15 * time.Second},
		t:         t,
	}
	env := map[string]string{
		"DEV_MODE":                     "true",
		"SECRET_KEY":                   RandomHex(32),
		"SITE_ADDRESS":                 "http://127.0.0.1:" + strconv.Itoa(httpPort),
		"ADMIN_ADDRESS":                s.AdminAddr,
		"LOG_LEVEL":                    "WARN",
		"DATABASE_URL":                 "",
		"DATABASE_PREPARED_STATEMENTS": "",
		"REDIS_URL":                    "",
		"DATABASE_CONNECT_TIMEOUT":     "10s",
		// A Redis slowed by a busy test machine must not send limit checks
		// to per-instance memory, which would change what tests count; a
		// Redis that is down still fails at once (connection refused).
		"RATE_LIMIT_REDIS_TIMEOUT": "2s",
		// Caddy's autosave and certificate storage stay out of $HOME.
		"XDG_CONFIG_HOME": t.TempDir(),
		"XDG_DATA_HOME":   t.TempDir(),
	}
	switch {
	case o.DatabaseURL != "":
		env["DATABASE_URL"] = o.DatabaseURL
	case o.Database == Postgres:
		env["DATABASE_URL"] = testservices.NewDatabase(t)
	case o.Database == PgBouncer:
		s.DatabaseURL = testservices.NewDatabase(t)
		env["DATABASE_URL"] = testservices.StartPgBouncer(t, s.DatabaseURL).URL()
		env["DATABASE_PREPARED_STATEMENTS"] = "false"
	default:
		s.SQLitePath = filepath.Join(t.TempDir(), "soul.db")
		env["SQLITE_PATH"] = s.SQLitePath
	}
	if s.DatabaseURL == "" {
		s.DatabaseURL = env["DATABASE_URL"]
	}
	if o.Unchecked == "" {
		s.Client.Transport = checker(t).Transport(t, nil)
	}
	switch {
	case o.RedisURL != "":
		env["REDIS_URL"] = o.RedisURL
	case o.Redis:
		env["REDIS_URL"] = testservices.RedisURL(t)
	}
	for k, v := range o.Env {
		env[k] = v
	}
	for k, v := range env {
		t.Setenv(k, v)
	}

	cfg := o.Caddyfile
	if cfg == "" {
		b, err := os.ReadFile(filepath.Join(RepoRoot(), "Caddyfile"))
		if err != nil {
			t.Fatalf("reading Caddyfile: %v", err)
		}
		cfg = string(b)
	}
	cfgJSON, err := Adapt(cfg)
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v", err)
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		t.Fatalf("loading config: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := s.Client.Get(s.BaseURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// checker loads the OpenAPI document once per test binary.
var checker = func() func(testing.TB) *contract.Checker {
	var (
		once sync.Once
		c    *contract.Checker
		err  error
	)
	return func(t testing.TB) *contract.Checker {
		t.Helper()
		once.Do(func() { c, err = contract.New(api.OpenAPI) })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}()

// Reload adapts caddyfile (the environment of Start still applies) and
// loads it in place of the running config, as `caddy reload` does.
func (s *Server) Reload(caddyfile string) {
	s.t.Helper()
	cfgJSON, err := Adapt(caddyfile)
	if err != nil {
		s.t.Fatalf("adapting Caddyfile: %v", err)
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		s.t.Fatalf("reloading config: %v", err)
	}
}

// Adapt turns a Caddyfile into JSON config, failing on warnings too: a
// warning in our Caddyfile is a mistake.
func Adapt(caddyfile string) ([]byte, error) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	out, warnings, err := adapter.Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, err
	}
	if len(warnings) > 0 {
		b, _ := json.Marshal(warnings)
		return nil, &adaptWarnings{string(b)}
	}
	return out, nil
}

type adaptWarnings struct{ s string }

func (w *adaptWarnings) Error() string { return "caddyfile warnings: " + w.s }

// Response is a finished request.
type Response struct {
	*http.Response
	Body []byte
}

// JSON decodes the body into v, failing the test on error.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s body %q: %v", r.Request.URL.Path, r.Body, err)
	}
}

// Problem decodes a problem+json body, failing the test when the answer is
// not one.
func (r *Response) Problem(t testing.TB) problem.Body {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("%s %s: Content-Type %q, want %q (body %q)", r.Request.Method, r.Request.URL.Path, ct, problem.ContentType, r.Body)
	}
	var p problem.Body
	r.JSON(t, &p)
	if p.Status != r.StatusCode || p.Code == "" || p.Title != http.StatusText(r.StatusCode) || p.Type == "" {
		t.Fatalf("malformed problem for status %d: %s", r.StatusCode, r.Body)
	}
	return p
}

// Do sends a request; body may be nil, a string, []byte or a value to
// encode as JSON. headers are name/value pairs.
func (s *Server) Do(method, path string, body any, headers ...string) *Response {
	s.t.Helper()
	var rd io.Reader
	jsonBody := false
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
		jsonBody = true
	case []byte:
		rd = bytes.NewBuffer(b)
		jsonBody = true
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			s.t.Fatalf("encoding body: %v", err)
		}
		rd = bytes.NewBuffer(enc)
		jsonBody = true
	}
	req, err := http.NewRequest(method, s.BaseURL+path, rd)
	if err != nil {
		s.t.Fatalf("building request: %v", err)
	}
	if jsonBody {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return &Response{Response: resp, Body: data}
}

// FreePort returns a loopback TCP port that was free a moment ago (see
// testservices.FreePort for the range and why).
func FreePort(t testing.TB) int {
	t.Helper()
	return testservices.FreePort(t)
}

// RandomHex returns n random bytes as hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
