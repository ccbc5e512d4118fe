package auth

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// Labels of the keys derived from SECRET_KEY. One key per purpose, so that
// no MAC or ciphertext made for one can be replayed as another; changing a
// label retires every value made under the old one.
const (
	LabelOTP         = "soul otp codes v1"
	LabelRefreshSeal = "soul refresh grace seal v1"
	// LabelRateLimitKeys keys the HMAC that hides subjects (phones, user
	// ids, IPs) in the rate limiter's storage keys.
	LabelRateLimitKeys = "soul rate-limit keys v1"
)

// DeriveKey returns a 32-byte key for one purpose from the secret.
func DeriveKey(secret []byte, label string) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, label, 32)
}
