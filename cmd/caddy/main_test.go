package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// binary is the caddy under test: the one `make build` made
// (SOUL_TEST_BINARY), or one built here from this package.
var binary string

func TestMain(m *testing.M) {
	var err error
	binary, err = soultest.BuildBinary()
	if err != nil {
		panic(err)
	}
	code := m.Run()
	soultest.RemoveBinary()
	os.Exit(code)
}

// baseEnv is soultest's minimal environment on a SQLite file of the test.
func baseEnv(t *testing.T, extra ...string) []string {
	return soultest.BinaryEnv(t, append([]string{"SQLITE_PATH=" + filepath.Join(t.TempDir(), "soul.db")}, extra...)...)
}

// run starts the binary and waits for it to exit (or kills it after 60 s).
func run(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = soultest.RepoRoot()
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// Secrets of the refused starts below, which no output may echo.
const (
	productionSecret = "production-secret-key-of-48-characters-for-tests"
	databasePassword = "hunter2hunter2"
	twilioToken      = "twilio-auth-token-for-tests"
)

// A bad start stops with one line that names the problem: no panic, no
// stack trace, and the process exits non-zero.
func TestStartRefusals(t *testing.T) {
	unknownSub := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(unknownSub, []byte("{\n\tsoul {\n\t\tsecret_sauce 1\n\t}\n}\n\n:0 {\n\trespond ok\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// production is a complete production environment but for the one
	// variable a case leaves out (an empty value) or changes. The soul app
	// checks its own settings before it connects, so its database is never
	// reached for those; the settings of one handler (CORS origins, the code
	// provider) are checked when that handler is set up, after the database
	// answered: those cases (db) get a real one.
	production := func(override ...string) []string {
		env := map[string]string{
			"DEV_MODE":                  "false",
			"SECRET_KEY":                productionSecret,
			"DATABASE_URL":              "postgres://soul:" + databasePassword + "@127.0.0.1:1/soul?sslmode=disable",
			"REDIS_URL":                 "redis://127.0.0.1:1",
			"CORS_ORIGINS":              "https://app.soulapp.app",
			"TWILIO_ACCOUNT_SID":        "AC1",
			"TWILIO_AUTH_TOKEN":         twilioToken,
			"TWILIO_VERIFY_SERVICE_SID": "VA1",
		}
		for _, kv := range override {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		var out []string
		for k, v := range env {
			out = append(out, k+"="+v)
		}
		return out
	}
	// Variables named in an answer about another one mean the check
	// reported more than the one problem. (A malformed REDIS_URL is
	// refused first by the certificate storage on it, provisioned before
	// the soul app, in its own words.)
	others := []string{"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CORS_ORIGINS", "TWILIO_"}
	cases := []struct {
		name   string
		env    []string
		config string
		want   string
		// alone: the line names no other variable (production rows,
		// where everything else is right).
		alone bool
		// db: run with a database that answers.
		db bool
	}{
		{"malformed DATABASE_URL", []string{"DEV_MODE=true", "DATABASE_URL=postgres://user@:5432"}, "Caddyfile", "DATABASE_URL has no host", false, false},
		{"unparseable DATABASE_URL", []string{"DEV_MODE=true", "DATABASE_URL=postgres://soul:" + databasePassword + "@127.0.0.1:port/soul"}, "Caddyfile", "DATABASE_URL is not a valid URL", false, false},
		{"DATABASE_URL of another scheme", []string{"DEV_MODE=true", "DATABASE_URL=mysql://soul:" + databasePassword + "@127.0.0.1/soul"}, "Caddyfile", `DATABASE_URL must start with postgres://, postgresql:// or postgresql+psycopg2:// (got scheme \"mysql\")`, false, false},
		{"unreachable database", []string{"DEV_MODE=true", "DATABASE_URL=postgres://soul:" + databasePassword + "@127.0.0.1:1/soul?sslmode=disable", "DATABASE_CONNECT_TIMEOUT=1s"}, "Caddyfile", "unreachable", false, false},
		{"unreachable database in production", production("DATABASE_CONNECT_TIMEOUT=1s"), "Caddyfile", "unreachable", true, false},
		{"REDIS_URL of another scheme", []string{"DEV_MODE=true", "REDIS_URL=http://127.0.0.1:6379"}, "Caddyfile", "the Redis URL is malformed", false, false},
		{"REDIS_URL without a host", []string{"DEV_MODE=true", "REDIS_URL=redis://"}, "Caddyfile", "REDIS_URL has no host", false, false},
		{"unparseable REDIS_URL", []string{"DEV_MODE=true", "REDIS_URL=redis://:" + databasePassword + "@127.0.0.1:port"}, "Caddyfile", "the Redis URL is malformed", false, false},
		{"production without REDIS_URL", production("REDIS_URL="), "Caddyfile", "REDIS_URL is required when DEV_MODE=false", true, false},
		{"production without a Twilio auth token", production("TWILIO_AUTH_TOKEN="), "Caddyfile", "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_VERIFY_SERVICE_SID are required when DEV_MODE=false", true, true},
		{"production without Twilio", production("TWILIO_ACCOUNT_SID=", "TWILIO_AUTH_TOKEN=", "TWILIO_VERIFY_SERVICE_SID="), "Caddyfile", "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_VERIFY_SERVICE_SID are required when DEV_MODE=false", true, true},
		{"production with empty CORS_ORIGINS", production("CORS_ORIGINS="), "Caddyfile", "CORS_ORIGINS is required when DEV_MODE=false", true, true},
		{"production with CORS_ORIGINS of commas", production("CORS_ORIGINS= , "), "Caddyfile", "CORS_ORIGINS is required when DEV_MODE=false", true, true},
		{"unknown subdirective", []string{"DEV_MODE=true"}, unknownSub, `unrecognized subdirective \"secret_sauce\"`, false, false},
		{"bad DATABASE_MAX_CONNECTIONS", []string{"DEV_MODE=true", "DATABASE_MAX_CONNECTIONS=0"}, "Caddyfile", "DATABASE_MAX_CONNECTIONS must be a whole number from 1 to 1000", false, false},
		{"bad DATABASE_PREPARED_STATEMENTS", []string{"DEV_MODE=true", "DATABASE_PREPARED_STATEMENTS=sometimes"}, "Caddyfile", "DATABASE_PREPARED_STATEMENTS must be true or false", false, false},
		{"bad RATE_LIMIT_REDIS_TIMEOUT", []string{"DEV_MODE=true", "RATE_LIMIT_REDIS_TIMEOUT=5"}, "Caddyfile", "RATE_LIMIT_REDIS_TIMEOUT must be a duration from 10ms to 10s", false, false},
		{"bad RETENTION_SWEEP_INTERVAL", []string{"DEV_MODE=true", "RETENTION_SWEEP_INTERVAL=soon"}, "Caddyfile", "RETENTION_SWEEP_INTERVAL must be a duration", false, false},
		{"short SECRET_KEY in production", []string{"DEV_MODE=false", "SECRET_KEY=short", "DATABASE_URL=postgres://soul@127.0.0.1:1/soul", "REDIS_URL=redis://127.0.0.1:1", "CORS_ORIGINS=https://soulapp.app", "TWILIO_ACCOUNT_SID=AC1", "TWILIO_AUTH_TOKEN=x", "TWILIO_VERIFY_SERVICE_SID=VA1"}, "Caddyfile", "SECRET_KEY must be at least 32 characters", false, false},
		{"production without anything", []string{"DEV_MODE=false"}, "Caddyfile", "DATABASE_URL is required", false, false},
		{"wildcard CORS in production", production("CORS_ORIGINS=*"), "Caddyfile", "the origin * is allowed only when DEV_MODE=true", false, true},
		{"bad DEV_MODE", []string{"DEV_MODE=perhaps"}, "Caddyfile", "DEV_MODE must be true or false", false, false},
		{"unknown country in OTP_ALLOWED_COUNTRIES", []string{"DEV_MODE=true", "OTP_ALLOWED_COUNTRIES=GB,UK"}, "Caddyfile", `\"UK\" is not an ISO 3166-1 alpha-2`, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			extra := append(tc.env, "PORT="+strconv.Itoa(soultest.FreePort(t)))
			if tc.db {
				extra = append(extra, "DATABASE_URL="+testservices.NewDatabase(t))
			}
			env := baseEnv(t, extra...)
			_, stderr, err := run(t, env, "run", "--config", tc.config, "--adapter", "caddyfile")
			if err == nil {
				t.Fatalf("started; stderr:\n%s", stderr)
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
				t.Fatalf("panicked:\n%s", stderr)
			}
			var errLines []string
			for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
				// Caddy reports a failed start as one error-level log line
				// (or, for some commands, one "Error:" line).
				if strings.HasPrefix(line, "Error: ") || strings.Contains(line, `"level":"error"`) {
					errLines = append(errLines, line)
				}
			}
			if len(errLines) != 1 || !strings.Contains(errLines[0], tc.want) {
				t.Fatalf("want one error line naming %q, got %q\nstderr:\n%s", tc.want, errLines, stderr)
			}
			for _, other := range others {
				if tc.alone && !strings.Contains(tc.want, other) && strings.Contains(errLines[0], other) {
					t.Fatalf("the line names %s too, beside %q: %s", other, tc.want, errLines[0])
				}
			}
			for _, secret := range []string{"SECRET_KEY=short", "secret_key\":\"short", productionSecret, databasePassword, twilioToken} {
				if strings.Contains(stderr, secret) {
					t.Fatalf("secret echoed:\n%s", stderr)
				}
			}
		})
	}
}

// What `make run` does: DEV_MODE, SQLite, in-memory limits, nothing else.
func TestRunsLikeMakeRun(t *testing.T) {
	port := soultest.FreePort(t)
	env := baseEnv(t, "DEV_MODE=true", "PORT="+strconv.Itoa(port))
	cmd := exec.Command(binary, "run", "--config", "Caddyfile", "--adapter", "caddyfile")
	cmd.Dir = soultest.RepoRoot()
	cmd.Env = env
	var stderr soultest.LogBuffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/healthz"
	var body map[string]any
	for {
		resp, err := http.Get(url)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && err == nil {
				break
			}
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no 200 from /healthz: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("first 200 from /healthz after %v", time.Since(start).Round(time.Millisecond))
	if body["status"] != "ok" || body["db"] != true || body["redis"] != false {
		t.Fatalf("health = %v", body)
	}
	if !strings.Contains(stderr.String(), `"rate_limit_storage":"memory (per instance)"`) {
		t.Errorf("startup log does not name the limit storage:\n%s", stderr.String())
	}

	// The container health check is the binary itself.
	out, errOut, err := run(t, env, "soul", "healthcheck")
	if err != nil || !strings.Contains(out, `"status":"ok"`) {
		t.Fatalf("soul healthcheck: %v\n%s%s", err, out, errOut)
	}
}

func TestHealthcheckFailsWhenNothingListens(t *testing.T) {
	env := baseEnv(t, "PORT="+strconv.Itoa(soultest.FreePort(t)))
	if _, _, err := run(t, env, "soul", "healthcheck", "--timeout", "1s"); err == nil {
		t.Fatal("healthcheck succeeded with no server")
	}
}

// The migrate command on each database, and through PgBouncer in
// transaction pooling mode, where the migration lock must be one a
// transaction holds.
func TestMigrateCommand(t *testing.T) {
	for _, db := range soultest.DatabasesAndPgBouncer {
		t.Run(string(db), func(t *testing.T) {
			var env []string
			switch db {
			case soultest.Postgres:
				env = baseEnv(t, "DATABASE_URL="+testservices.NewDatabase(t))
			case soultest.PgBouncer:
				bouncer := testservices.StartPgBouncer(t, testservices.NewDatabase(t))
				env = baseEnv(t, "DATABASE_URL="+bouncer.URL(), "DATABASE_PREPARED_STATEMENTS=false")
			default:
				env = baseEnv(t)
			}
			steps := []struct{ args, want string }{
				{"status", "pending"},
				{"up", "applied 20261123000001"},
				{"up", "nothing to do"},
				{"status", "applied (group 1)"},
				{"down", "rolled back 20261123000001"},
				{"status", "pending"},
				{"up", "applied 20261123000001"},
			}
			for _, st := range steps {
				out, errOut, err := run(t, env, "soul", "migrate", st.args)
				if err != nil || !strings.Contains(out, st.want) {
					t.Fatalf("migrate %s: %v\nstdout: %s\nstderr: %s\nwant %q", st.args, err, out, errOut, st.want)
				}
			}
			if _, _, err := run(t, env, "soul", "migrate", "sideways"); err == nil {
				t.Error("migrate sideways succeeded")
			}
		})
	}
}
