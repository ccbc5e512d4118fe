package auth

import (
	"errors"
	"time"

	"github.com/soulapp/soul/internal/limiter"
)

// The outcomes of sign-in that the API tells clients apart. None of them
// carries a phone number, code or token.
var (
	ErrInvalidPhone        = errors.New("auth: invalid phone number")
	ErrInvalidCode         = errors.New("auth: wrong code")
	ErrCodeExpired         = errors.New("auth: code expired or never sent")
	ErrTooManyAttempts     = errors.New("auth: too many attempts")
	ErrRateLimited         = errors.New("auth: rate limited")
	ErrProviderUnavailable = errors.New("auth: SMS provider unavailable")
	ErrInvalidRefreshToken = errors.New("auth: refresh token invalid, expired or revoked")
	// ErrRefreshReused is an ErrInvalidRefreshToken that revoked its session.
	ErrRefreshReused = errors.New("auth: refresh token reused; session revoked")
	// ErrCountryNotAllowed is a number outside OTP_ALLOWED_COUNTRIES.
	ErrCountryNotAllowed = errors.New("auth: phone country not allowed")
	// ErrPhoneNotSupported is a number the provider will not send to:
	// Twilio's Fraud Guard or Geo Permissions.
	ErrPhoneNotSupported = errors.New("auth: phone number not supported by the SMS provider")
	// ErrBudgetExhausted is a code request past the SMS budget (the
	// global or the country's), answered with a RetryError.
	ErrBudgetExhausted = errors.New("auth: SMS budget exhausted")
	ErrNotFound        = errors.New("auth: not found")
	ErrLimitsKept      = errors.New("auth: account deleted but rate-limit entries kept")
)

// RetryError is ErrRateLimited, ErrTooManyAttempts or ErrBudgetExhausted with the time after
// which trying again can succeed.
type RetryError struct {
	Err        error
	RetryAfter time.Duration
	// Decision is the refusing rate-limit rule's state, for the answer's
	// rate-limit fields; its Rule.Name is the policy clients see, as
	// soul_rate_limit shows its own. Nil when no limiter refused (a code
	// burned by wrong tries, Twilio's own attempt limit): such an answer
	// has only Retry-After.
	Decision *limiter.Decision
}

// limited is the RetryError of a refusal by the limiter. It reports the
// refusing rule that waits longest, the one res.RetryAfter comes from, so
// the rate-limit fields and Retry-After speak of the same policy.
func limited(err error, res limiter.Result) *RetryError {
	d := res.Tightest()
	return &RetryError{Err: err, RetryAfter: res.RetryAfter, Decision: &d}
}

func (e *RetryError) Error() string { return e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }

// reused wraps both reuse sentinels so errors.Is matches either.
type reusedError struct{}

func (reusedError) Error() string { return ErrRefreshReused.Error() }
func (reusedError) Is(target error) bool {
	return target == ErrRefreshReused || target == ErrInvalidRefreshToken
}
