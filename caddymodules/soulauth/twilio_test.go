package soulauth_test

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/internal/twilio/twiliotest"
	"github.com/soulapp/soul/soultest"
)

// TestTwilio signs in through the local Twilio stand-in with each of
// Twilio's answers that the API tells apart, with Caddy's logs at DEBUG,
// and then searches those logs for the auth token, the phones and the
// codes of the run.
func TestTwilio(t *testing.T) {
	for _, db := range soultest.Databases {
		t.Run(string(db), func(t *testing.T) {
			tw := twiliotest.NewServer(t)
			caddyfile, readLogs := soultest.CaptureLogs(t, repoCaddyfile(t))
			secret := soultest.RandomHex(32)
			redisURL := testservices.RedisURL(t)
			rdb := testservices.RedisClient(t, redisURL)
			names := soultest.LimiterKeys(t, secret)
			s := soultest.Start(t, soultest.Options{Database: db, RedisURL: redisURL, Caddyfile: caddyfile, Env: map[string]string{
				"SECRET_KEY":                secret,
				"TWILIO_ACCOUNT_SID":        tw.AccountSID,
				"TWILIO_AUTH_TOKEN":         tw.AuthToken,
				"TWILIO_VERIFY_SERVICE_SID": tw.ServiceSID,
				"TWILIO_VERIFY_BASE_URL":    tw.URL,
				// Short enough for the stand-in's 5 s delay to time out, long
				// enough for a slow test machine's ordinary calls.
				"TWILIO_TIMEOUT": "2s",
			}})
			// What the logs must never hold: the auth token, every phone,
			// and every code, right or wrong. Each phone gets codes of its
			// own (DefaultCode is the example in invalid_phone's detail).
			secrets := []string{tw.AuthToken}
			var codes []string
			right, wrong := map[string]string{}, map[string]string{}
			newPhone := func() string {
				p := newPhone()
				right[p], wrong[p] = randomCode(t), randomCode(t)
				secrets = append(secrets, p, strings.TrimPrefix(p, "+"))
				codes = append(codes, right[p], wrong[p])
				tw.Script(p, twiliotest.Phone{Code: right[p]})
				return p
			}
			// script scripts phone, keeping its code.
			script := func(phone string, p twiliotest.Phone) {
				p.Code = right[phone]
				tw.Script(phone, p)
			}
			request := func(phone string) *soultest.Response {
				return newClient(t, s).post(soulauth.PathOTPRequest, map[string]string{"phone": phone})
			}
			verify := func(phone, code string) *soultest.Response {
				return newClient(t, s).post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": code})
			}
			checks := func(phone string) int {
				n := 0
				for _, r := range tw.Requests() {
					if r.Operation == twiliotest.OpCheck && r.Form.Get("To") == phone {
						n++
					}
				}
				return n
			}

			t.Run("approved", func(t *testing.T) {
				phone := newPhone()
				resp := request(phone)
				soultest.WantStatus(t, resp, http.StatusOK)
				var sent soulauth.OTPSent
				resp.JSON(t, &sent)
				if sent.PreviewCode != "" {
					t.Fatal("Twilio codes must not be previewed")
				}
				if tw.Sent(phone) != 1 {
					t.Fatalf("Twilio sent %d SMS, want 1", tw.Sent(phone))
				}
				soultest.WantStatus(t, verify(phone, right[phone]), http.StatusOK)
			})
			t.Run("pending: wrong code", func(t *testing.T) {
				phone := newPhone()
				soultest.WantStatus(t, request(phone), http.StatusOK)
				soultest.WantProblem(t, verify(phone, wrong[phone]), http.StatusUnauthorized, "invalid_code")
				soultest.WantStatus(t, verify(phone, right[phone]), http.StatusOK)
			})
			t.Run("60200 invalid phone", func(t *testing.T) {
				phone := newPhone()
				script(phone, twiliotest.Phone{Start: &twiliotest.InvalidParameter})
				soultest.WantProblem(t, request(phone), http.StatusUnprocessableEntity, "invalid_phone")
			})
			// Fraud Guard and Geo Permissions refuse the number, not the
			// request: another try would not help.
			for _, f := range []twiliotest.Failure{twiliotest.FraudGuardBlocked, twiliotest.GeoPermissionBlocked} {
				t.Run(fmt.Sprintf("%d not supported", f.Code), func(t *testing.T) {
					phone := newPhone()
					script(phone, twiliotest.Phone{Start: &f})
					soultest.WantProblem(t, request(phone), http.StatusUnprocessableEntity, "phone_not_supported")
				})
			}
			t.Run("60212 concurrent", func(t *testing.T) {
				phone := newPhone()
				script(phone, twiliotest.Phone{Start: &twiliotest.TooManyConcurrent})
				resp := request(phone)
				soultest.WantProblem(t, resp, http.StatusTooManyRequests, "rate_limited")
				if resp.Header.Get("Retry-After") == "" {
					t.Fatal("no Retry-After")
				}
				script(phone, twiliotest.Phone{Check: &twiliotest.TooManyConcurrent})
				soultest.WantProblem(t, verify(phone, right[phone]), http.StatusTooManyRequests, "rate_limited")
			})
			t.Run("60203 max sends", func(t *testing.T) {
				phone := newPhone()
				script(phone, twiliotest.Phone{Start: &twiliotest.MaxSendsReached})
				resp := request(phone)
				soultest.WantProblem(t, resp, http.StatusTooManyRequests, "too_many_attempts")
				if resp.Header.Get("Retry-After") == "" {
					t.Fatal("no Retry-After")
				}
			})
			t.Run("60202 max checks", func(t *testing.T) {
				phone := newPhone()
				script(phone, twiliotest.Phone{Check: &twiliotest.MaxChecksReached})
				soultest.WantStatus(t, request(phone), http.StatusOK)
				soultest.WantProblem(t, verify(phone, right[phone]), http.StatusTooManyRequests, "too_many_attempts")
			})
			t.Run("20404 expired", func(t *testing.T) {
				phone := newPhone()
				soultest.WantStatus(t, request(phone), http.StatusOK)
				tw.Expire(phone)
				soultest.WantProblem(t, verify(phone, right[phone]), http.StatusUnauthorized, "code_expired")
			})
			t.Run("500", func(t *testing.T) {
				phone := newPhone()
				script(phone, twiliotest.Phone{Start: &twiliotest.InternalError, Check: &twiliotest.InternalError})
				soultest.WantProblem(t, request(phone), http.StatusBadGateway, "sms_provider_unavailable")
				soultest.WantProblem(t, verify(phone, right[phone]), http.StatusBadGateway, "sms_provider_unavailable")
			})
			t.Run("timeout", func(t *testing.T) {
				phone := newPhone()
				script(phone, twiliotest.Phone{Delay: 5 * time.Second})
				start := time.Now()
				soultest.WantProblem(t, request(phone), http.StatusBadGateway, "sms_provider_unavailable")
				if time.Since(start) > 4*time.Second {
					t.Fatal("the Twilio timeout was not applied")
				}
			})
			t.Run("timeout on the check", func(t *testing.T) {
				phone := newPhone()
				soultest.WantStatus(t, request(phone), http.StatusOK)
				script(phone, twiliotest.Phone{Delay: 5 * time.Second})
				start := time.Now()
				soultest.WantProblem(t, verify(phone, right[phone]), http.StatusBadGateway, "sms_provider_unavailable")
				// An upper bound above the 2 s timeout, below the stand-in's
				// 5 s: it only tells a timeout from a wait.
				if time.Since(start) > 4*time.Second {
					t.Fatal("the Twilio timeout was not applied to the check")
				}
				// The check that timed out is no verdict: the code still works.
				script(phone, twiliotest.Phone{})
				soultest.WantStatus(t, verify(phone, right[phone]), http.StatusOK)
			})
			t.Run("five wrong tries burn the verification", func(t *testing.T) {
				phone := newPhone()
				soultest.WantStatus(t, request(phone), http.StatusOK)
				for range 5 {
					soultest.WantProblem(t, verify(phone, wrong[phone]), http.StatusUnauthorized, "invalid_code")
				}
				// The phone's otp_attempts limit refuses the sixth try before
				// it reaches Twilio.
				soultest.WantProblem(t, verify(phone, right[phone]), http.StatusTooManyRequests, "too_many_attempts")
				if n := checks(phone); n != 5 {
					t.Fatalf("Twilio got %d checks, want the 5 wrong ones", n)
				}
				// That limit's window (5 minutes) is shorter than the life of
				// a Twilio verification (10 minutes). Once it has slid past
				// the wrong tries (here: its entry deleted), Twilio's own
				// limit of 5 checks per verification still refuses the right
				// code, so the tries do not resume: Twilio answers 60202
				// (the stand-in does) or, having deleted the verification at
				// the limit, 20404.
				key := names.StorageKey("otp_attempts", phone)
				if n, err := rdb.Do(t.Context(), rdb.B().Del().Key(key).Build()).AsInt64(); err != nil || n != 1 {
					t.Fatalf("deleting the phone's tries: %d, %v (is the key name right?)", n, err)
				}
				resp := verify(phone, right[phone])
				if p := resp.Problem(t); p.Code != "too_many_attempts" && p.Code != "code_expired" {
					t.Fatalf("the right code after the burn: %d %s, want too_many_attempts or code_expired", resp.StatusCode, p.Code)
				}
				if n := checks(phone); n != 6 {
					t.Fatalf("Twilio got %d checks, want 6", n)
				}
			})
			// A failed send still spends the phone's cooldown and a send of
			// its day: Twilio may have sent the SMS before the answer was
			// lost, and a provider in trouble (or a number it refuses) must
			// not be hammered at the client's pace, at Twilio's price.
			t.Run("a failed send spends the cooldown", func(t *testing.T) {
				for _, f := range []twiliotest.Failure{twiliotest.InternalError, twiliotest.InvalidParameter} {
					phone := newPhone()
					script(phone, twiliotest.Phone{Start: &f})
					if resp := request(phone); resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusUnprocessableEntity {
						t.Fatalf("Twilio %d: status %d", f.Code, resp.StatusCode)
					}
					script(phone, twiliotest.Phone{})
					resp := request(phone)
					soultest.WantProblem(t, resp, http.StatusTooManyRequests, "rate_limited")
					wantLimitFields(t, resp, "otp_send", 1, time.Minute)
					if _, ok := redisDump(t, rdb)[names.StorageKey("otp_send_day", phone)]; !ok {
						t.Fatalf("Twilio %d: the failed send was not counted in the day's sends", f.Code)
					}
					if tw.Sent(phone) != 0 {
						t.Fatalf("Twilio %d: %d SMS sent after a refusal", f.Code, tw.Sent(phone))
					}
				}
			})
			t.Run("test numbers skip Twilio", func(t *testing.T) {
				// Covered with its own server below; here the listed number
				// is absent, so it is an ordinary (invalid) number.
				soultest.WantProblem(t, request("+15555550100"), http.StatusUnprocessableEntity, "invalid_phone")
			})
			for _, r := range tw.Requests() {
				if r.Invalid != nil {
					t.Errorf("Twilio stand-in rejected a %s request: %v", r.Operation, r.Invalid)
				}
			}

			soultest.SearchLogs(t, readLogs(), []string{"sign-in code sent", "signed in", "sign-in refused", "SMS provider unavailable", `"level":"debug"`},
				secrets, codes)
		})
	}
}

// randomCode is a six-digit code other than the stand-in's DefaultCode.
func randomCode(t testing.TB) string {
	t.Helper()
	for {
		n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
		if err != nil {
			t.Fatal(err)
		}
		if c := fmt.Sprintf("%06d", n); c != twiliotest.DefaultCode {
			return c
		}
	}
}

// repoCaddyfile is the repository's Caddyfile.
func repoCaddyfile(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(soultest.RepoRoot(), "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTestNumbersInProduction is the App Store review case: with
// DEV_MODE=false, a listed number signs in with its fixed code and Twilio
// is never called; after OTP_TEST_NUMBERS_VALID_UNTIL the fixed codes stop
// working, for a fictional number (then invalid) and for a real one (then
// an ordinary number, whose code Twilio sends).
func TestTestNumbersInProduction(t *testing.T) {
	const fictional, realPhone = "+15555550100", "+447400999999"
	for _, tc := range []struct {
		name  string
		until time.Duration
	}{{"honoured", time.Hour}, {"expired", -time.Hour}} {
		t.Run(tc.name, func(t *testing.T) {
			tw := twiliotest.NewServer(t)
			s := soultest.Start(t, soultest.Options{Database: soultest.Postgres, Redis: true, Env: map[string]string{
				"DEV_MODE":                     "false",
				"SECRET_KEY":                   soultest.RandomHex(32),
				"CORS_ORIGINS":                 "https://app.soulapp.app",
				"TWILIO_ACCOUNT_SID":           tw.AccountSID,
				"TWILIO_AUTH_TOKEN":            tw.AuthToken,
				"TWILIO_VERIFY_SERVICE_SID":    tw.ServiceSID,
				"TWILIO_VERIFY_BASE_URL":       tw.URL,
				"OTP_TEST_NUMBERS":             fictional + "=246810," + realPhone + "=135790",
				"OTP_TEST_NUMBERS_VALID_UNTIL": time.Now().Add(tc.until).UTC().Format(time.RFC3339),
			}})
			c := newClient(t, s)
			request := func(phone string) *soultest.Response {
				return c.post(soulauth.PathOTPRequest, map[string]string{"phone": phone})
			}
			verify := func(phone, code string) *soultest.Response {
				return c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": code})
			}

			if tc.until > 0 {
				for phone, code := range map[string]string{fictional: "246810", realPhone: "135790"} {
					resp := request(phone)
					soultest.WantStatus(t, resp, http.StatusOK)
					var sent soulauth.OTPSent
					resp.JSON(t, &sent)
					if sent.PreviewCode != "" {
						t.Fatal("a preview code in production")
					}
					soultest.WantStatus(t, verify(phone, code), http.StatusOK)
				}
				if n := len(tw.Requests()); n != 0 {
					t.Fatalf("Twilio was called %d times for test numbers", n)
				}
				return
			}
			soultest.WantProblem(t, request(fictional), http.StatusUnprocessableEntity, "invalid_phone")
			soultest.WantProblem(t, verify(fictional, "246810"), http.StatusUnprocessableEntity, "invalid_phone")
			soultest.WantStatus(t, request(realPhone), http.StatusOK)
			if tw.Sent(realPhone) != 1 {
				t.Fatalf("Twilio sent %d SMS to the number whose listing expired, want 1", tw.Sent(realPhone))
			}
			soultest.WantProblem(t, verify(realPhone, "135790"), http.StatusUnauthorized, "invalid_code")
		})
	}
}

func TestTestNumbers(t *testing.T) {
	tw := twiliotest.NewServer(t)
	env := map[string]string{
		"TWILIO_ACCOUNT_SID":           tw.AccountSID,
		"TWILIO_AUTH_TOKEN":            tw.AuthToken,
		"TWILIO_VERIFY_SERVICE_SID":    tw.ServiceSID,
		"TWILIO_VERIFY_BASE_URL":       tw.URL,
		"OTP_TEST_NUMBERS":             "+1 555 555 0100=246810",
		"OTP_TEST_NUMBERS_VALID_UNTIL": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	}
	forEachDatabase(t, soultest.Options{Env: env}, func(t *testing.T, s *soultest.Server) {
		c := newClient(t, s)
		resp := c.post(soulauth.PathOTPRequest, map[string]string{"phone": "+1 (555) 555-0100"})
		soultest.WantStatus(t, resp, http.StatusOK)
		soultest.WantProblem(t, c.post(soulauth.PathVerifyOTP, map[string]string{"phone": "+15555550100", "code": "111111"}),
			http.StatusUnauthorized, "invalid_code")
		resp = c.post(soulauth.PathVerifyOTP, map[string]string{"phone": "+15555550100", "code": "246810"})
		soultest.WantStatus(t, resp, http.StatusOK)
		var pair soulauth.TokenPair
		resp.JSON(t, &pair)
		if pair.User.Phone != "+15555550100" {
			t.Fatalf("user phone %q", pair.User.Phone)
		}
		if len(tw.Requests()) != 0 {
			t.Fatalf("Twilio was called %d times for a test number", len(tw.Requests()))
		}
		// A neighbour of the listed number is not let in loosely.
		soultest.WantProblem(t, c.post(soulauth.PathOTPRequest, map[string]string{"phone": "+15555550101"}), http.StatusUnprocessableEntity, "invalid_phone")
	})

	env["OTP_TEST_NUMBERS_VALID_UNTIL"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	forEachDatabase(t, soultest.Options{Env: env}, func(t *testing.T, s *soultest.Server) {
		soultest.WantProblem(t, newClient(t, s).post(soulauth.PathOTPRequest, map[string]string{"phone": "+15555550100"}),
			http.StatusUnprocessableEntity, "invalid_phone")
	})
}
