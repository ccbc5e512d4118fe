package auth

import (
	"errors"
	"net/http"

	"github.com/soulapp/soul/internal/metrics"
	"github.com/soulapp/soul/internal/problem"
)

// Outcome is how the API answers, logs and counts one of the errors of
// this package.
type Outcome struct {
	// Err is the error, matched with errors.Is.
	Err error
	// Status, Code and Detail are the problem the client gets.
	Status int
	Code   string
	Detail string
	// Reason names the outcome in logs ("reason" of a refused sign-in).
	Reason string
	// Result is the outcome's value of the sign-in metrics' result label.
	Result string
}

// Outcomes is every error of the Service that the API tells clients
// apart, in the order an error is matched: ErrRefreshReused is also an
// ErrInvalidRefreshToken and comes first. Any other error is a failure of
// the server (or the database down), answered by the handler.
var Outcomes = []Outcome{
	{ErrInvalidPhone, http.StatusUnprocessableEntity, "invalid_phone",
		"The phone number is not valid; give it with its country code, such as +44 7400 123456.",
		"invalid_phone", metrics.ResultInvalidPhone},
	{ErrInvalidCode, http.StatusUnauthorized, "invalid_code",
		"The code is not right.",
		"invalid_code", metrics.ResultInvalidCode},
	{ErrCodeExpired, http.StatusUnauthorized, "code_expired",
		"The code has expired or was already used; request a new one.",
		"code_expired", metrics.ResultExpired},
	{ErrTooManyAttempts, http.StatusTooManyRequests, "too_many_attempts",
		"Too many tries for this code; request a new one.",
		"too_many_attempts", metrics.ResultTooManyTries},
	{ErrRateLimited, http.StatusTooManyRequests, "rate_limited",
		"Too many requests; retry later.",
		"rate_limited", metrics.ResultLimited},
	{ErrCountryNotAllowed, http.StatusUnprocessableEntity, "phone_country_not_allowed",
		"Sign-in codes are not sent to numbers of this country.",
		"phone_country_not_allowed", metrics.ResultCountryNotAllowed},
	{ErrPhoneNotSupported, http.StatusUnprocessableEntity, "phone_not_supported",
		"Sign-in codes cannot be sent to this number; use another one.",
		"phone_not_supported", metrics.ResultNotSupported},
	{ErrBudgetExhausted, http.StatusTooManyRequests, "sms_budget_exhausted",
		"Too many sign-in codes are being sent right now; retry later.",
		"sms_budget_exhausted", metrics.ResultBudgetExhausted},
	{ErrProviderUnavailable, http.StatusBadGateway, "sms_provider_unavailable",
		"The SMS provider is unavailable; retry later.",
		"sms_provider_unavailable", metrics.ResultProviderError},
	{ErrRefreshReused, http.StatusUnauthorized, "invalid_refresh_token",
		"The refresh token is invalid, expired or revoked; sign in again.",
		"refresh_token_reused", metrics.ResultReused},
	{ErrInvalidRefreshToken, http.StatusUnauthorized, "invalid_refresh_token",
		"The refresh token is invalid, expired or revoked; sign in again.",
		"invalid_refresh_token", metrics.ResultInvalid},
	{ErrNotFound, http.StatusNotFound, "not_found",
		"No such resource.",
		"not_found", metrics.ResultError},
}

// OutcomeOf returns the first of Outcomes that err is; false for nil and
// for an error that is none of them.
func OutcomeOf(err error) (Outcome, bool) {
	if err == nil {
		return Outcome{}, false
	}
	for _, o := range Outcomes {
		if errors.Is(err, o.Err) {
			return o, true
		}
	}
	return Outcome{}, false
}

// Problem is the API answer of the outcome, a new one each call (a
// handler adds Retry-After and rate-limit fields to it).
func (o Outcome) Problem() *problem.Error {
	return problem.New(o.Status, o.Code, o.Detail)
}

// Reason names err for logs: its Outcome's Reason, "error" for any other.
func Reason(err error) string {
	if o, ok := OutcomeOf(err); ok {
		return o.Reason
	}
	return "error"
}

// Result is err's value of the sign-in metrics' result label, a small
// fixed set: metrics.ResultOK for nil, its Outcome's Result, else
// metrics.ResultError.
func Result(err error) string {
	if err == nil {
		return metrics.ResultOK
	}
	if o, ok := OutcomeOf(err); ok {
		return o.Result
	}
	return metrics.ResultError
}
