package auth

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/soulapp/soul/internal/metrics"
	"github.com/soulapp/soul/internal/problem"
	"github.com/soulapp/soul/internal/twilio"
)

func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		err            error
		code           string
		reason, result string
	}{
		{fmt.Errorf("normalizing: %w", ErrInvalidPhone), "invalid_phone", "invalid_phone", metrics.ResultInvalidPhone},
		{&RetryError{Err: ErrTooManyAttempts}, "too_many_attempts", "too_many_attempts", metrics.ResultTooManyTries},
		{&RetryError{Err: ErrRateLimited}, "rate_limited", "rate_limited", metrics.ResultLimited},
		{ErrCountryNotAllowed, "phone_country_not_allowed", "phone_country_not_allowed", metrics.ResultCountryNotAllowed},
		{twilioError(&twilio.Error{Status: 403, Code: twilio.CodeFraudGuardBlocked}), "phone_not_supported", "phone_not_supported", metrics.ResultNotSupported},
		{twilioError(&twilio.Error{Status: 403, Code: twilio.CodeGeoPermission}), "phone_not_supported", "phone_not_supported", metrics.ResultNotSupported},
		{twilioError(&twilio.Error{Status: 429, Code: twilio.CodeTooManyConcurrent}), "rate_limited", "rate_limited", metrics.ResultLimited},
		{&RetryError{Err: ErrBudgetExhausted}, "sms_budget_exhausted", "sms_budget_exhausted", metrics.ResultBudgetExhausted},
		{fmt.Errorf("%w: %w", ErrProviderUnavailable, errors.New("timeout")), "sms_provider_unavailable", "sms_provider_unavailable", metrics.ResultProviderError},
		// A reuse is also an invalid token: it is answered as one and
		// counted apart.
		{reusedError{}, "invalid_refresh_token", "refresh_token_reused", metrics.ResultReused},
		{ErrInvalidRefreshToken, "invalid_refresh_token", "invalid_refresh_token", metrics.ResultInvalid},
		{ErrNotFound, "not_found", "not_found", metrics.ResultError},
	} {
		o, ok := OutcomeOf(tc.err)
		if !ok || o.Code != tc.code || Reason(tc.err) != tc.reason || Result(tc.err) != tc.result {
			t.Errorf("%v: outcome %+v (%v), reason %q, result %q; want %s, %s, %s",
				tc.err, o, ok, Reason(tc.err), Result(tc.err), tc.code, tc.reason, tc.result)
		}
	}
	for _, err := range []error{nil, errors.New("database gone"), ErrLimitsKept} {
		if o, ok := OutcomeOf(err); ok {
			t.Errorf("OutcomeOf(%v) = %+v", err, o)
		}
		if Reason(err) != "error" {
			t.Errorf("Reason(%v) = %q", err, Reason(err))
		}
	}
	// Too many concurrent requests at Twilio is answered with a time to retry.
	var re *RetryError
	if err := twilioError(&twilio.Error{Status: 429, Code: twilio.CodeTooManyConcurrent}); !errors.As(err, &re) || re.RetryAfter <= 0 {
		t.Errorf("60212 = %v, want a RetryError with a time", err)
	}
	if Result(nil) != metrics.ResultOK || Result(errors.New("x")) != metrics.ResultError {
		t.Error("Result of nil or of an unknown error")
	}
}

// Every outcome is a problem a client can be sent; not found is the
// answer of every other 404.
func TestOutcomeProblems(t *testing.T) {
	for _, o := range Outcomes {
		p := o.Problem()
		if p.Status < 400 || p.Code == "" || p.Detail == "" || o.Reason == "" || o.Result == "" {
			t.Errorf("%v: incomplete outcome %+v", o.Err, o)
		}
		if p == o.Problem() {
			t.Errorf("%v: Problem shares one value between answers", o.Err)
		}
	}
	o, _ := OutcomeOf(ErrNotFound)
	if want := problem.From(nil, http.StatusNotFound); o.Status != want.Status || o.Code != want.Code || o.Detail != want.Detail {
		t.Errorf("not found answers %+v, other 404s %+v", o.Problem(), want)
	}
}
