package soulauth_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/soultest"
	"github.com/soulapp/soul/internal/twilio/twiliotest"
)

func TestTwilio(t *testing.T) {
	for _, db := range soultest.Databases {
		t.Run(string(db), func(t *testing.T) {
			tw := twiliotest.NewServer(t)
			s := soultest.Start(t, soultest.Options{Database: db, Redis: true, Env: map[string]string{
				"TWILIO_ACCOUNT_SID":        tw.AccountSID,
				"TWILIO_AUTH_TOKEN":         tw.AuthToken,
				"TWILIO_VERIFY_SERVICE_SID": tw.ServiceSID,
				"TWILIO_VERIFY_BASE_URL":    tw.URL,
				"TWILIO_TIMEOUT":            "300ms",
			}})
			request := func(phone string) *soultest.Response {
				return newClient(t, s).post(soulauth.PathOTPRequest, map[string]string{"phone": phone})
			}
			verify := func(phone, code string) *soultest.Response {
				return newClient(t, s).post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": code})
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
				soultest.WantStatus(t, verify(phone, twiliotest.DefaultCode), http.StatusOK)
			})
			t.Run("pending: wrong code", func(t *testing.T) {
				phone := newPhone()
				soultest.WantStatus(t, request(phone), http.StatusOK)
				soultest.WantProblem(t, verify(phone, "000000"), http.StatusUnauthorized, "invalid_code")
				soultest.WantStatus(t, verify(phone, twiliotest.DefaultCode), http.StatusOK)
			})
			t.Run("60200 invalid phone", func(t *testing.T) {
				phone := newPhone()
				tw.Script(phone, twiliotest.Phone{Start: &twiliotest.InvalidParameter})
				soultest.WantProblem(t, request(phone), http.StatusUnprocessableEntity, "invalid_phone")
			})
			t.Run("60203 max sends", func(t *testing.T) {
				phone := newPhone()
				tw.Script(phone, twiliotest.Phone{Start: &twiliotest.MaxSendsReached})
				resp := request(phone)
				soultest.WantProblem(t, resp, http.StatusTooManyRequests, "too_many_attempts")
				if resp.Header.Get("Retry-After") == "" {
					t.Fatal("no Retry-After")
				}
			})
			t.Run("60202 max checks", func(t *testing.T) {
				phone := newPhone()
				tw.Script(phone, twiliotest.Phone{Check: &twiliotest.MaxChecksReached})
				soultest.WantStatus(t, request(phone), http.StatusOK)
				soultest.WantProblem(t, verify(phone, twiliotest.DefaultCode), http.StatusTooManyRequests, "too_many_attempts")
			})
			t.Run("20404 expired", func(t *testing.T) {
				phone := newPhone()
				soultest.WantStatus(t, request(phone), http.StatusOK)
				tw.Expire(phone)
				soultest.WantProblem(t, verify(phone, twiliotest.DefaultCode), http.StatusUnauthorized, "code_expired")
			})
			t.Run("500", func(t *testing.T) {
				phone := newPhone()
				tw.Script(phone, twiliotest.Phone{Start: &twiliotest.InternalError, Check: &twiliotest.InternalError})
				soultest.WantProblem(t, request(phone), http.StatusBadGateway, "sms_provider_unavailable")
				soultest.WantProblem(t, verify(phone, twiliotest.DefaultCode), http.StatusBadGateway, "sms_provider_unavailable")
			})
			t.Run("timeout", func(t *testing.T) {
				phone := newPhone()
				tw.Script(phone, twiliotest.Phone{Delay: 5 * time.Second})
				start := time.Now()
				soultest.WantProblem(t, request(phone), http.StatusBadGateway, "sms_provider_unavailable")
				if time.Since(start) > 4*time.Second {
					t.Fatal("the Twilio timeout was not applied")
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
