package soulcmd_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/soulapp/soul/caddymodules/soulcmd"
	"github.com/soulapp/soul/internal/soultest"
	"github.com/soulapp/soul/internal/testservices"
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
)

func smokeEnv() map[string]string {
	return map[string]string{
		"CORS_ORIGINS":                 smokeOrigin,
		"OTP_TEST_NUMBERS":             smokePhone + "=" + smokeCode + "," + otherPhone + "=" + otherCode,
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

// Caddy runs one config per process: these tests start servers one at a
// time and never in parallel.
func TestSmokePassesOnAHealthyDeployment(t *testing.T) {
	srv := soultest.Start(t, soultest.Options{Database: soultest.Postgres, Redis: true, Env: smokeEnv()})

	t.Run("test number with its code", func(t *testing.T) {
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL, Origin: smokeOrigin, Phone: smokePhone, Code: smokeCode})
		if err != nil {
			t.Fatalf("smoke failed: %v", err)
		}
		for _, check := range []string{"healthz", "security_headers", "not_found", "cors_preflight", "otp_request", "verify_otp", "me", "moods", "logout"} {
			if !strings.Contains(out, "ok   "+check+"\n") {
				t.Errorf("no passing %s line", check)
			}
		}
		if !strings.Contains(out, "PASSED all 9 checks") {
			t.Errorf("no summary line")
		}
	})

	t.Run("DEV_MODE preview code", func(t *testing.T) {
		// A real-looking number: the code comes back as preview_code.
		if _, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL + "/", Phone: "+14155552671"}); err != nil {
			t.Fatalf("smoke failed: %v", err)
		}
	})

	t.Run("origin not in CORS_ORIGINS", func(t *testing.T) {
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL, Origin: "https://evil.example"})
		if err == nil || !strings.Contains(err.Error(), "cors_preflight") || !strings.Contains(out, "FAIL cors_preflight") {
			t.Fatalf("want a failed cors_preflight, got %v", err)
		}
		if strings.Contains(out, "FAIL healthz") {
			t.Errorf("healthz failed too")
		}
	})

	t.Run("wrong code", func(t *testing.T) {
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL, Phone: otherPhone, Code: "000000"})
		if err == nil || !strings.Contains(out, "FAIL verify_otp") || !strings.Contains(out, "FAIL me: not run: verify_otp failed") {
			t.Fatalf("want verify_otp and what follows it failed, got %v", err)
		}
	})
}

func TestSmokeFailsWhenPostgresIsDown(t *testing.T) {
	pg := testservices.StartPostgres(t)
	srv := soultest.Start(t, soultest.Options{DatabaseURL: pg.URL(), Env: smokeEnv()})
	if _, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL}); err != nil {
		t.Fatalf("smoke failed before Postgres stopped: %v", err)
	}

	pg.Stop()
	out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: srv.BaseURL, Phone: smokePhone, Code: smokeCode, Timeout: 20 * time.Second})
	if err == nil {
		t.Fatal("smoke passed with Postgres stopped")
	}
	if !strings.Contains(err.Error(), "healthz") || !strings.Contains(out, "FAIL healthz: status 503") {
		t.Errorf("healthz not named as failed: %v", err)
	}
	// The edge still works: headers and problems come from Caddy itself.
	if !strings.Contains(out, "ok   not_found") {
		t.Errorf("not_found failed too")
	}
}

func TestSmokeFailsOnTheWrongURL(t *testing.T) {
	t.Run("nothing listens", func(t *testing.T) {
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: "http://127.0.0.1:" + strconv.Itoa(soultest.FreePort(t)), Timeout: 2 * time.Second})
		if err == nil || !strings.Contains(out, "FAIL healthz") || !strings.Contains(out, "FAIL not_found") {
			t.Fatalf("want healthz and not_found failed, got %v", err)
		}
	})
	t.Run("some other server", func(t *testing.T) {
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", "other")
			_, _ = w.Write([]byte("hello"))
		}))
		defer other.Close()
		out, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: other.URL})
		if err == nil {
			t.Fatal("smoke passed against a server that is not the API")
		}
		for _, check := range []string{"healthz", "security_headers", "not_found"} {
			if !strings.Contains(out, "FAIL "+check+": ") {
				t.Errorf("%s not failed", check)
			}
		}
	})
	t.Run("not a URL", func(t *testing.T) {
		if _, err := runSmoke(t, soulcmd.SmokeOptions{BaseURL: "api.soulapp.app"}); err == nil || !strings.Contains(err.Error(), "--base-url") {
			t.Fatalf("want a --base-url error, got %v", err)
		}
	})
}

// The subcommand of the built binary: exit status 0 on a healthy server,
// non-zero naming the check otherwise.
func TestSmokeCommandExitStatus(t *testing.T) {
	bin := soultest.Binary(t)
	srv := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Env: smokeEnv()})

	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"soul", "smoke"}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("--base-url", srv.BaseURL, "--origin", smokeOrigin, "--phone", smokePhone, "--code", smokeCode)
	if err != nil {
		t.Fatalf("smoke against a healthy server: %v\n%s", err, out)
	}
	if !strings.Contains(out, "PASSED all 9 checks") {
		t.Errorf("no summary:\n%s", out)
	}

	out, err = run("--base-url", "http://127.0.0.1:"+strconv.Itoa(soultest.FreePort(t)), "--timeout", "2s")
	if err == nil {
		t.Fatalf("smoke against nothing exited 0:\n%s", out)
	}
	if !strings.Contains(out, "FAIL healthz") || !strings.Contains(out, "failed: healthz") {
		t.Errorf("the failed check is not named:\n%s", out)
	}

	if out, err = run(); err == nil || !strings.Contains(out, "--base-url") {
		t.Errorf("smoke without --base-url: %v\n%s", err, out)
	}
}
