package soulcmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soulapp/soul/caddymodules/soulcmd"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	soultest.RemoveBinary()
	os.Exit(code)
}

const (
	smokeOrigin = "https://app.soulapp.test"
	smokePhone  = "+15555550100"
	smokeCode   = "246810"
	// A second test number: a phone may ask for one code a minute.
	otherPhone = "+15555550101"
	otherCode  = "135790"
	// A test number for the OTP burst, as production would use.
	burstPhone = "+15555550102"
	burstCode  = "864200"
)

// allChecks are the lines of a full run, in order.
var allChecks = []string{"healthz", "security_headers", "not_found", "cors_preflight", "cors_refused",
	"otp_request", "verify_otp", "me", "moods", "logout", "otp_burst"}

func smokeEnv() map[string]string {
	return map[string]string{
		"CORS_ORIGINS":                 smokeOrigin,
		"OTP_TEST_NUMBERS":             smokePhone + "=" + smokeCode + "," + otherPhone + "=" + otherCode + "," + burstPhone + "=" + burstCode,
		"OTP_TEST_NUMBERS_VALID_UNTIL": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
	}
}

func runSmoke(t *testing.T, o soulcmd.SmokeOptions) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := soulcmd.Smoke(context.Background(), o, &out)
	t.Logf("smoke output:\n%s", out.String())
	return out.String(), err
}

// wantPassed fails the test unless out has a passing line for each check.
func wantPassed(t *testing.T, out string, checks ...string) {
	t.Helper()
	for _, check := range checks {
		if !strings.Contains(out, "ok   "+check+"\n") && !strings.Contains(out, "ok   "+check+": ") {
			t.Errorf("no passing %s line", check)
		}
	}
}

// Caddy runs one config per process: these tests start servers one at a
// time and never in parallel. Every run here comes from 127.0.0.1, which
// may ask for 5 codes per 5 minutes on one server, and the subtests use up
// that budget: a new subtest that asks for a code needs a server of its own.
func TestSmokePassesOnAHealthyDeployment(t *testing.T) {
	srv := soultest.Start(t, soultest.Options{Database: soultest.Postgres, Redis: true, Env: smokeEnv()})

	t.Run("test number with its code", func(t *testing.T) {
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL, Origin: smokeOrigin, Phone: smokePhone, Code: smokeCode, BurstPhone: burstPhone})
		if err != nil {
			t.Fatalf("smoke failed: %v", err)
		}
		wantPassed(t, out, allChecks...)
		if !strings.Contains(out, "status=ok db=true redis=true") {
			t.Errorf("healthz line without the flags")
		}
		if !strings.Contains(out, `ok   otp_burst: 429 "Too Many Requests" at request `) || !strings.Contains(out, "Retry-After ") {
			t.Errorf("otp_burst line does not show the 429")
		}
		if !strings.Contains(out, "PASSED all 11 checks against "+srv.BaseURL+"\n") {
			t.Errorf("no summary line")
		}
	})

	t.Run("DEV_MODE preview code, burst on a test number", func(t *testing.T) {
		// A real-looking number: the code comes back as preview_code.
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL + "/", Phone: "+14155552671", BurstPhone: burstPhone})
		if err != nil {
			t.Fatalf("smoke failed: %v", err)
		}
		wantPassed(t, out, "otp_request", "verify_otp", "moods", "otp_burst")
		if !strings.Contains(out, "skip cors_preflight: no --origin given\n") || !strings.Contains(out, "(skipped: cors_preflight)") {
			t.Errorf("the check left out for want of --origin is not said")
		}
	})

	t.Run("origins the wrong way round", func(t *testing.T) {
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL, Origin: "https://evil.example", RefusedOrigin: smokeOrigin})
		if err == nil || !strings.Contains(err.Error(), "cors_preflight, cors_refused") {
			t.Fatalf("want cors_preflight and cors_refused failed, got %v", err)
		}
		if !strings.Contains(out, "FAIL cors_preflight: status 403") || !strings.Contains(out, "FAIL cors_refused: status 204 with Access-Control-Allow-Origin "+smokeOrigin) {
			t.Errorf("the CORS failures are not described")
		}
		if !strings.Contains(out, "skip otp_request, verify_otp, me, moods, logout: no --phone given\n") || !strings.Contains(out, "skip otp_burst: no --burst-phone given\n") {
			t.Errorf("the checks left out are not said")
		}
		wantPassed(t, out, "healthz")
	})

	t.Run("wrong code", func(t *testing.T) {
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL, Phone: otherPhone, Code: "000000", SkipBurst: true})
		if err == nil || !strings.Contains(out, "FAIL verify_otp: status 401") || !strings.Contains(out, "skip me, moods, logout: not run: verify_otp failed\n") {
			t.Fatalf("want verify_otp failed and what follows it not run, got %v", err)
		}
		if !strings.Contains(out, "FAILED 1 of ") {
			t.Errorf("no summary naming one failure")
		}
	})

	t.Run("burst on the sign-in phone", func(t *testing.T) {
		_, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL, Phone: "+1 555 555 0100", Code: smokeCode, BurstPhone: smokePhone})
		if err == nil || !strings.Contains(err.Error(), "--burst-phone must differ from --phone") {
			t.Fatalf("want the options refused, got %v", err)
		}
	})
}

// healthz: "ok" without Redis is embedded mode and passes; "degraded"
// (Redis configured but down) fails unless --allow-degraded.
func TestSmokeHealthzRedis(t *testing.T) {
	redis := testservices.StartRedis(t)
	srv := soultest.Start(t, soultest.Options{Database: soultest.SQLite, RedisURL: redis.URL(), Env: smokeEnv()})
	redis.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var h struct{ Status string }
		srv.Do(http.MethodGet, "/healthz", nil).JSON(t, &h)
		if h.Status == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz status %q with Redis stopped, want degraded", h.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}

	out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL, SkipBurst: true})
	if err == nil || !strings.Contains(out, "FAIL healthz: status=degraded db=true redis=false") || !strings.Contains(out, "--allow-degraded") {
		t.Fatalf("want healthz failed on degraded, got %v", err)
	}
	out, err = runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL, SkipBurst: true, AllowDegraded: true})
	if err != nil || !strings.Contains(out, "ok   healthz: status=degraded") {
		t.Fatalf("want healthz passed with --allow-degraded, got %v", err)
	}
}

func TestSmokeFailsWhenPostgresIsDown(t *testing.T) {
	pg := testservices.StartPostgres(t)
	srv := soultest.Start(t, soultest.Options{DatabaseURL: pg.URL(), Env: smokeEnv()})
	out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL, SkipBurst: true})
	if err != nil {
		t.Fatalf("smoke failed before Postgres stopped: %v", err)
	}
	if !strings.Contains(out, "ok   healthz: status=ok db=true redis=false") || !strings.Contains(out, "(no Redis configured: embedded mode") {
		t.Errorf("healthz without Redis is not said to be embedded mode")
	}

	pg.Stop()
	out, err = runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL, Phone: smokePhone, Code: smokeCode, SkipBurst: true, Timeout: 20 * time.Second})
	if err == nil {
		t.Fatal("smoke passed with Postgres stopped")
	}
	if !strings.Contains(err.Error(), "healthz") || !strings.Contains(out, "FAIL healthz: status 503") {
		t.Errorf("healthz not named as failed: %v", err)
	}
	// The edge still works: headers and problems come from Caddy itself.
	wantPassed(t, out, "not_found", "cors_refused")
}

// silentListener accepts TCP connections and never answers on them, as a
// wedged process or a black-holing load balancer would.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

func TestSmokeFailsOnTheWrongURL(t *testing.T) {
	t.Run("nothing listens", func(t *testing.T) {
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: "http://127.0.0.1:1", Timeout: 2 * time.Second})
		if err == nil || !strings.Contains(out, "FAIL healthz: GET /healthz: cannot connect to 127.0.0.1:") || !strings.Contains(out, "connection refused") {
			t.Fatalf("want healthz failed naming the refused connection, got %v", err)
		}
		if !strings.Contains(out, "skip security_headers, not_found, cors_preflight, cors_refused, otp_request, verify_otp, me, moods, logout, otp_burst: not run: ") {
			t.Errorf("the checks not run are not listed on one line")
		}
		if strings.Count(out, "FAIL ") != 1 || !strings.Contains(out, "FAILED 1 of 1 checks") {
			t.Errorf("want one failed check and the summary")
		}
	})

	t.Run("accepts but never answers", func(t *testing.T) {
		const timeout = time.Second
		start := time.Now()
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: silentListener(t), Phone: smokePhone, Code: smokeCode, Timeout: timeout})
		elapsed := time.Since(start)
		if err == nil || !strings.Contains(out, "FAIL healthz: GET /healthz: no answer from 127.0.0.1:") || !strings.Contains(out, "within 1s (--timeout)") {
			t.Fatalf("want healthz failed naming the timeout, got %v", err)
		}
		if !strings.Contains(out, "skip security_headers, not_found,") {
			t.Errorf("the checks not run are not listed")
		}
		// One timeout, not one per check: eleven would take 11 s. The
		// bound is five times the timeout, for a busy machine.
		if elapsed > 5*timeout {
			t.Errorf("smoke took %s against a silent server with a %s timeout", elapsed, timeout)
		}
	})

	t.Run("some other server", func(t *testing.T) {
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", "other")
			_, _ = w.Write([]byte("hello"))
		}))
		defer other.Close()
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: other.URL, BurstPhone: burstPhone})
		if err == nil {
			t.Fatal("smoke passed against a server that is not the API")
		}
		for _, check := range []string{"healthz", "security_headers", "not_found", "otp_burst"} {
			if !strings.Contains(out, "FAIL "+check+": ") {
				t.Errorf("%s not failed", check)
			}
		}
		if !strings.Contains(out, "FAIL otp_burst: no 429 within 10 requests (statuses: 200 200 200") {
			t.Errorf("otp_burst does not say it never saw a 429")
		}
	})

	t.Run("a 429 without Retry-After", func(t *testing.T) {
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusTooManyRequests)
			_ = json.NewEncoder(w).Encode(map[string]any{"status": 429, "title": "Too Many Requests", "code": "rate_limited"})
		}))
		defer other.Close()
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: other.URL, BurstPhone: burstPhone})
		if err == nil || !strings.Contains(out, `FAIL otp_burst: the 429 at request 1: Retry-After "", want a positive number of seconds`) {
			t.Fatalf("want otp_burst failed for want of Retry-After, got %v", err)
		}
	})

	t.Run("not a URL", func(t *testing.T) {
		if _, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: "api.soulapp.app"}); err == nil || !strings.Contains(err.Error(), "--base-url") {
			t.Fatalf("want a --base-url error, got %v", err)
		}
	})
}

// startBinary runs the built binary on the repository's Caddyfile with
// Postgres and Redis, as a deployment runs, and returns its base URL.
func startBinary(t *testing.T, bin string) string {
	t.Helper()
	base := "http://127.0.0.1:" + strconv.Itoa(soultest.FreePort(t))
	env := soultest.BinaryEnv(t,
		"SITE_ADDRESS="+base,
		"DEV_MODE=true",
		"LOG_LEVEL=WARN",
		"SECRET_KEY="+soultest.RandomHex(32),
		"DATABASE_URL="+testservices.NewDatabase(t),
		"REDIS_URL="+testservices.RedisURL(t),
		"DATABASE_CONNECT_TIMEOUT=30s",
	)
	for k, v := range smokeEnv() {
		env = append(env, k+"="+v)
	}
	log := &soultest.LogBuffer{}
	cmd := exec.Command(bin, "run", "--config", filepath.Join(soultest.RepoRoot(), "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := client.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-done:
			t.Fatalf("caddy run exited:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy run did not answer /healthz:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The subcommand of the built binary against the built binary on Postgres
// and Redis: exit status 0 with every check passing, non-zero naming the
// check otherwise.
func TestSmokeCommandExitStatus(t *testing.T) {
	bin := soultest.Binary(t)
	base := startBinary(t, bin)

	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"soul", "smoke"}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		t.Logf("caddy soul smoke %s:\n%s", strings.Join(args, " "), out)
		return string(out), err
	}
	exitCode := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return -1
	}

	out, err := run("--base-url", base, "--origin", smokeOrigin, "--phone", smokePhone, "--code", smokeCode, "--burst-phone", burstPhone)
	if err != nil {
		t.Fatalf("smoke against a healthy server: %v\n%s", err, out)
	}
	wantPassed(t, out, allChecks...)
	if strings.Contains(out, "FAIL") || strings.Contains(out, "skip") || !strings.Contains(out, "PASSED all 11 checks") {
		t.Errorf("want every check passed:\n%s", out)
	}

	out, err = run("--base-url", base, "--phone", otherPhone, "--code", "000000", "--skip-burst")
	if exitCode(err) < 1 || !strings.Contains(out, "FAIL verify_otp: status 401") || !strings.Contains(out, "failed: verify_otp") {
		t.Errorf("smoke with a wrong code: exit %d, want verify_otp named", exitCode(err))
	}

	out, err = run("--base-url", "http://127.0.0.1:1", "--timeout", "2s")
	if exitCode(err) < 1 || !strings.Contains(out, "FAIL healthz: GET /healthz: cannot connect") || !strings.Contains(out, "failed: healthz") {
		t.Errorf("smoke against nothing: exit %d, want the failed check named", exitCode(err))
	}

	// The bound covers the process start on a busy machine as well as the
	// one 1 s timeout; a timeout per check would take over 11 s.
	start := time.Now()
	out, err = run("--base-url", silentListener(t), "--timeout", "1s")
	if exitCode(err) < 1 || !strings.Contains(out, "no answer from 127.0.0.1:") || !strings.Contains(out, "within 1s (--timeout)") {
		t.Errorf("smoke against a silent server: exit %d, want the timeout named", exitCode(err))
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("smoke against a silent server took %s", elapsed)
	}

	if out, err = run(); exitCode(err) < 1 || !strings.Contains(out, "--base-url") {
		t.Errorf("smoke without --base-url: %v\n%s", err, out)
	}
}
