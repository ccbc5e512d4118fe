package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// RefreshPrefix starts every refresh token. It lets a refresh token sent
// where an access token belongs be refused before any parsing, and makes a
// leaked one easy to recognise in a secret scanner.
const RefreshPrefix = "rt_"

// refreshBytes is 256 bits of randomness.
const refreshBytes = 32

// refreshLength is the length of a refresh token as NewRefreshToken makes it.
var refreshLength = len(RefreshPrefix) + base64.RawURLEncoding.EncodedLen(refreshBytes)

// NewRefreshToken returns a new refresh token for the client and the hash
// under which the server stores it. The plain token is never stored.
func NewRefreshToken() (plain string, hash []byte) {
	b := make([]byte, refreshBytes)
	// crypto/rand.Read never returns an error: it aborts the program if the
	// system's random source fails.
	_, _ = rand.Read(b)
	plain = RefreshPrefix + base64.RawURLEncoding.EncodeToString(b)
	return plain, HashRefreshToken(plain)
}

// HashRefreshToken returns the stored form of a refresh token. A single
// SHA-256 is the right choice: the token carries 256 bits of randomness, so
// there is nothing for a slow password hash to protect against, and a fast,
// deterministic hash lets the database look a session up by it.
func HashRefreshToken(plain string) []byte {
	sum := sha256.Sum256([]byte(plain))
	return sum[:]
}

// EqualRefreshHash compares two refresh token hashes in constant time.
func EqualRefreshHash(a, b []byte) bool {
	return subtle.ConstantTimeCompare(a, b) == 1
}

// WellFormedRefreshToken reports whether s has the shape NewRefreshToken
// produces, so that junk can be refused without a database lookup.
func WellFormedRefreshToken(s string) bool {
	if len(s) != refreshLength || !strings.HasPrefix(s, RefreshPrefix) {
		return false
	}
	body := s[len(RefreshPrefix):]
	// The decoder skips CR and LF, so the alphabet is checked first; strict
	// decoding then refuses non-zero trailing bits, leaving one spelling per
	// token.
	for i := 0; i < len(body); i++ {
		if body[i] == '.' || !isTokenByte(body[i]) {
			return false
		}
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(body)
	return err == nil
}
