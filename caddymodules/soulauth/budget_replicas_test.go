package soulauth_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// budgetReplica is one running binary on the production Caddyfile.
type budgetReplica struct {
	base   string
	log    *soultest.LogBuffer
	client *http.Client
}

// startBudgetReplica runs the built binary with its own port, admin
// endpoint and SQLite file (DEV_MODE: local codes); env adds variables.
func startBudgetReplica(t *testing.T, env ...string) *budgetReplica {
	t.Helper()
	bin := soultest.Binary(t)
	r := &budgetReplica{
		base:   "http://127.0.0.1:" + strconv.Itoa(soultest.FreePort(t)),
		log:    &soultest.LogBuffer{},
		client: &http.Client{Timeout: 10 * time.Second},
	}
	cmd := osexec.Command(bin, "run", "--config", "Caddyfile", "--adapter", "caddyfile")
	cmd.Dir = soultest.RepoRoot()
	cmd.Env = soultest.BinaryEnv(t, append([]string{
		"SQLITE_PATH=" + filepath.Join(t.TempDir(), "soul.db"),
		"SITE_ADDRESS=" + r.base,
		"DEV_MODE=true",
		"LOG_LEVEL=WARN",
	}, env...)...)
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := r.client.Get(r.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica on %s did not answer /healthz:\n%s", r.base, r.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requestCode asks for a code for phone from client address ip and
// returns the status and the problem code of a refusal.
func (r *budgetReplica) requestCode(phone, ip string) (int, string, error) {
	body, _ := json.Marshal(map[string]string{"phone": phone})
	req, err := http.NewRequest(http.MethodPost, r.base+soulauth.PathOTPRequest, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p struct {
		Code string `json:"code"`
	}
	if resp.StatusCode != http.StatusOK {
		_ = json.Unmarshal(b, &p)
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			return resp.StatusCode, p.Code, fmt.Errorf("429 without Retry-After: %s", b)
		}
	}
	return resp.StatusCode, p.Code, nil
}

// TestBudgetExactAcrossReplicas: two binaries sharing one Redis, sent code
// requests in parallel (every request a phone and a client address of its
// own, so only the budget can refuse), admit exactly the budget together:
// first a country's, then, in another country, the rest of the global one.
func TestBudgetExactAcrossReplicas(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testBudgetExactAcrossReplicas(t, testservices.RedisURL(t)) })
	t.Run("cluster", func(t *testing.T) { testBudgetExactAcrossReplicas(t, testservices.SharedRedisCluster(t).URL()) })
}

func testBudgetExactAcrossReplicas(t *testing.T, redisURL string) {
	const (
		perCountry = 15
		global     = 20
		perReplica = 30
		workers    = 6
	)
	// A Redis slowed by a busy machine must not send a check to
	// per-instance memory: that is the outage path, not this test's.
	env := []string{
		"SECRET_KEY=" + soultest.RandomHex(32), "REDIS_URL=" + redisURL, "RATE_LIMIT_REDIS_TIMEOUT=2s",
		"OTP_SEND_BUDGET_HOURLY=" + strconv.Itoa(global),
		"OTP_SEND_BUDGET_HOURLY_PER_COUNTRY=" + strconv.Itoa(perCountry),
	}
	replicas := []*budgetReplica{startBudgetReplica(t, env...), startBudgetReplica(t, env...)}

	var seq atomic.Int64
	send := func(phoneOf func(n int64) string) (admitted, refused int64) {
		var ok, no atomic.Int64
		var wg sync.WaitGroup
		for _, r := range replicas {
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range perReplica / workers {
						n := seq.Add(1)
						status, code, err := r.requestCode(phoneOf(n), fmt.Sprintf("198.51.%d.%d", n/250, n%250+1))
						switch {
						case err != nil:
							t.Error(err)
						case status == http.StatusOK:
							ok.Add(1)
						case status == http.StatusTooManyRequests && code == "sms_budget_exhausted":
							no.Add(1)
						default:
							t.Errorf("answer %d %s", status, code)
						}
					}
				}()
			}
		}
		wg.Wait()
		return ok.Load(), no.Load()
	}

	ok, no := send(func(n int64) string { return fmt.Sprintf("+4474009%05d", n) }) // GB
	t.Logf("one country: admitted=%d budget=%d (refused %d of %d)", ok, perCountry, no, ok+no)
	if ok != perCountry || ok+no != 2*perReplica {
		t.Errorf("one country: admitted=%d budget=%d, refused %d", ok, perCountry, no)
	}
	ok, no = send(func(n int64) string { return fmt.Sprintf("+3538512%05d", n) }) // IE
	t.Logf("global: admitted=%d budget=%d (the rest after %d; refused %d of %d)", ok, global-perCountry, perCountry, no, ok+no)
	if ok != global-perCountry || ok+no != 2*perReplica {
		t.Errorf("global: admitted=%d budget=%d, refused %d", ok, global-perCountry, no)
	}
	if t.Failed() {
		for i, r := range replicas {
			t.Logf("replica %d:\n%s", i, r.log.String())
		}
	}
}
