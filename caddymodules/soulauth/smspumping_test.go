package soulauth_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/soultest"
)

// TestSMSPumping: codes go only to the allowed countries, and past the
// hourly budget of a country code requests answer sms_budget_exhausted
// with the budget's rate-limit fields; test numbers are neither.
func TestSMSPumping(t *testing.T) {
	const testNumber = "+15555550100" // fictional, of no allowed country
	s := soultest.Start(t, soultest.Options{Env: map[string]string{
		"OTP_ALLOWED_COUNTRIES":              "gb, IE",
		"OTP_SEND_BUDGET_HOURLY":             "10",
		"OTP_SEND_BUDGET_HOURLY_PER_COUNTRY": "2",
		"OTP_TEST_NUMBERS":                   testNumber + "=123456",
		"OTP_TEST_NUMBERS_VALID_UNTIL":       time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	}})
	request := func(phone string) *soultest.Response {
		return newClient(t, s).post(soulauth.PathOTPRequest, map[string]string{"phone": phone})
	}

	for _, p := range []string{"+33612345678", "+12015550123", "+80012345678"} {
		soultest.WantProblem(t, request(p), http.StatusUnprocessableEntity, "phone_country_not_allowed")
	}
	soultest.WantStatus(t, request(newPhone()), http.StatusOK)
	soultest.WantStatus(t, request(newPhone()), http.StatusOK)
	resp := request(newPhone())
	soultest.WantProblem(t, resp, http.StatusTooManyRequests, "sms_budget_exhausted")
	wantLimitFields(t, resp, "otp_budget_country", 2, time.Hour)
	// Another allowed country has its own budget.
	soultest.WantStatus(t, request("+353851234567"), http.StatusOK)
	// A test number sends nothing: no country, no budget.
	soultest.WantStatus(t, request(testNumber), http.StatusOK)
}

// A list naming an unknown country stops the start, naming it.
func TestAllowedCountriesUnknown(t *testing.T) {
	t.Setenv("OTP_ALLOWED_COUNTRIES", "GB,UK")
	_, err := soultest.Adapt(repoCaddyfile(t))
	if err == nil || !strings.Contains(err.Error(), `OTP_ALLOWED_COUNTRIES: "UK" is not`) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("adapting with UK: %v; want one line naming it", err)
	}
}
