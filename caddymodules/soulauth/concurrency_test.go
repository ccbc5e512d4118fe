package soulauth_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/twilio/twiliotest"
	"github.com/soulapp/soul/soultest"
)

// TestConcurrentSignIn fires requests for one phone all at once, each from
// its own client IP so that only the phone's limits stand between them,
// on Postgres and a real Redis, with the local provider and with Twilio:
// twenty wrong codes get at most five tries before the code is burned,
// and ten code requests send exactly one code.
func TestConcurrentSignIn(t *testing.T) {
	tw := twiliotest.NewServer(t)
	providers := []struct {
		name string
		env  map[string]string
	}{
		{"local", nil},
		{"twilio", map[string]string{
			"TWILIO_ACCOUNT_SID":        tw.AccountSID,
			"TWILIO_AUTH_TOKEN":         tw.AuthToken,
			"TWILIO_VERIFY_SERVICE_SID": tw.ServiceSID,
			"TWILIO_VERIFY_BASE_URL":    tw.URL,
		}},
	}
	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			s := soultest.Start(t, soultest.Options{Database: soultest.Postgres, Redis: true, Env: p.env})
			db := s.OpenDB(t)

			t.Run("twenty wrong codes at once", func(t *testing.T) {
				phone := newPhone()
				resp := newClient(t, s).post(soulauth.PathOTPRequest, map[string]string{"phone": phone})
				soultest.WantStatus(t, resp, http.StatusOK)
				var sent soulauth.OTPSent
				resp.JSON(t, &sent)
				right := sent.PreviewCode
				if p.name == "twilio" {
					right = twiliotest.DefaultCode
				}

				outcomes := concurrently(t, s, 20, soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": wrongCode(right)})
				// The limiter counts tries atomically in Redis: exactly five
				// get through, however the requests interleave.
				if n := outcomes["401 invalid_code"]; n != 5 {
					t.Errorf("%d wrong codes were tried, want 5 (outcomes %v)", n, outcomes)
				}
				if outcomes["401 invalid_code"]+outcomes["429 too_many_attempts"] != 20 {
					t.Errorf("outcomes %v, want only invalid_code and too_many_attempts", outcomes)
				}
				soultest.WantProblem(t, newClient(t, s).post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": right}),
					http.StatusTooManyRequests, "too_many_attempts")
				if n := soultest.Count(t, db, "users", "phone = ?", phone); n != 0 {
					t.Fatalf("%d accounts opened by a burned code", n)
				}
				if p.name == "twilio" {
					checks := 0
					for _, r := range tw.Requests() {
						if r.Operation == twiliotest.OpCheck && r.Form.Get("To") == phone {
							checks++
						}
					}
					if checks != outcomes["401 invalid_code"] {
						t.Errorf("Twilio got %d checks, want the %d admitted tries", checks, outcomes["401 invalid_code"])
					}
				}
			})

			t.Run("ten code requests at once", func(t *testing.T) {
				phone := newPhone()
				outcomes := concurrently(t, s, 10, soulauth.PathOTPRequest, map[string]string{"phone": phone})
				if outcomes["200 "] != 1 || outcomes["429 rate_limited"] != 9 {
					t.Errorf("outcomes %v, want one 200 and nine 429 rate_limited", outcomes)
				}
				switch p.name {
				case "twilio":
					if n := tw.Sent(phone); n != 1 {
						t.Errorf("Twilio sent %d SMS, want 1", n)
					}
				case "local":
					if n := soultest.Count(t, db, "otp_challenges", "phone = ?", phone); n != 1 {
						t.Errorf("%d codes stored, want 1", n)
					}
				}
			})
		})
	}
}

// concurrently posts body to path n times at once, each from its own
// client IP, and counts the outcomes as "status code" ("200 " for an
// answer that is no problem).
func concurrently(t *testing.T, s *soultest.Server, n int, path string, body any) map[string]int {
	t.Helper()
	payload, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		outcomes = map[string]int{}
		start    = make(chan struct{})
		wg       sync.WaitGroup
	)
	for range n {
		ip := newIP()
		wg.Go(func() {
			<-start
			req, err := http.NewRequest(http.MethodPost, s.BaseURL+path, bytes.NewReader(payload))
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Forwarded-For", ip)
			resp, err := s.Client.Do(req)
			if err != nil {
				t.Errorf("POST %s: %v", path, err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var p struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal(b, &p)
			mu.Lock()
			outcomes[fmt.Sprintf("%d %s", resp.StatusCode, p.Code)]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return outcomes
}
