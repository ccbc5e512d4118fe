package token

import "context"

// verifiedKey keys, in a request's context, an access token already
// verified earlier in the same request.
type verifiedKey struct{}

type verified struct {
	raw    string
	claims Claims
}

// WithVerified returns a copy of ctx remembering that raw verified as c, so
// a later handler of the same request (the rate limiter verifies before the
// authenticator does) need not check the signature again.
func WithVerified(ctx context.Context, raw string, c Claims) context.Context {
	return context.WithValue(ctx, verifiedKey{}, verified{raw: raw, claims: c})
}

// VerifiedIn returns the claims WithVerified stored in ctx for exactly raw;
// any other token, or none stored, is false.
func VerifiedIn(ctx context.Context, raw string) (Claims, bool) {
	v, ok := ctx.Value(verifiedKey{}).(verified)
	if !ok || raw == "" || v.raw != raw {
		return Claims{}, false
	}
	return v.claims, true
}
