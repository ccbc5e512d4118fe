package soulauth

import (
	"errors"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/metrics"
)

// result names an outcome of the sign-in service for metrics: a small,
// fixed set of values.
func result(err error) string {
	switch {
	case err == nil:
		return metrics.ResultOK
	case errors.Is(err, auth.ErrInvalidPhone):
		return metrics.ResultInvalidPhone
	case errors.Is(err, auth.ErrInvalidCode):
		return metrics.ResultInvalidCode
	case errors.Is(err, auth.ErrCodeExpired):
		return metrics.ResultExpired
	case errors.Is(err, auth.ErrTooManyAttempts):
		return metrics.ResultTooManyTries
	case errors.Is(err, auth.ErrRateLimited):
		return metrics.ResultLimited
	case errors.Is(err, auth.ErrProviderUnavailable):
		return metrics.ResultProviderError
	case errors.Is(err, auth.ErrRefreshReused):
		return metrics.ResultReused
	case errors.Is(err, auth.ErrInvalidRefreshToken):
		return metrics.ResultInvalid
	}
	return metrics.ResultError
}
