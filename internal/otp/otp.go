// Package otp holds the rules for one-time sign-in codes: how they are made,
// how they are stored and compared, how often they may be sent, and which
// operator-listed test numbers bypass the SMS provider.
package otp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

const (
	// CodeLength is the number of decimal digits in a code.
	CodeLength = 6
	// CodeTTL is how long a code can be used after it is sent.
	CodeTTL = 5 * time.Minute
	// MaxAttempts is how many wrong codes burn a challenge.
	MaxAttempts = 5
	// SendCooldown is the minimum time between two sends to one phone.
	SendCooldown = 60 * time.Second
	// SendsPerDay caps the codes sent to one phone in a day.
	SendsPerDay = 10
)

// codeSpace is the number of distinct codes, 10^CodeLength.
const codeSpace = 1_000_000

// sampleLimit is the largest multiple of codeSpace that fits in 32 bits.
// Samples at or above it are drawn again, because folding them in with a
// modulo would make the low codes slightly more likely than the rest.
const sampleLimit = (1 << 32) / codeSpace * codeSpace

// NewCode returns a uniformly random code of CodeLength digits, leading zeros
// included.
func NewCode() (string, error) {
	return newCode(rand.Reader)
}

func newCode(r io.Reader) (string, error) {
	var b [4]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", fmt.Errorf("otp: reading random bytes: %w", err)
		}
		if v := binary.BigEndian.Uint32(b[:]); v < sampleLimit {
			return fmt.Sprintf("%06d", v%codeSpace), nil
		}
	}
}

// WellFormedCode reports whether code is exactly CodeLength ASCII digits,
// the only shape a submitted code can usefully have.
func WellFormedCode(code string) bool {
	if len(code) != CodeLength {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// MinKeyLength is the shortest key NewHasher accepts: a full HMAC-SHA256
// key, as a derivation from SECRET_KEY produces.
const MinKeyLength = 32

// Hasher turns codes into the MACs that are stored in their place. Six
// digits are only a million possibilities, so a plain hash of a code would
// be reversed instantly by anyone reading the database; a keyed MAC is not
// reversible without the key, which lives only in the environment.
type Hasher struct {
	key []byte
}

// NewHasher returns a Hasher keyed with key. The key should be derived from
// SECRET_KEY for this one purpose rather than be SECRET_KEY itself, so that
// no MAC made here can be mistaken for a token signature.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < MinKeyLength {
		return nil, errors.New("otp: hasher key is shorter than 32 bytes")
	}
	return &Hasher{key: append([]byte(nil), key...)}, nil
}

// hashDomain separates these MACs from any other use of the same key and
// lets the format change later without old and new MACs colliding.
const hashDomain = "soul otp v1"

// Hash returns the MAC of code for the phone it was sent to. Binding the
// phone in means a stored MAC is only good for that phone's challenge.
func (h *Hasher) Hash(phoneE164, code string) []byte {
	m := hmac.New(sha256.New, h.key)
	// NUL separators keep the fields unambiguous: none of them contains one.
	m.Write([]byte(hashDomain))
	m.Write([]byte{0})
	m.Write([]byte(phoneE164))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}

// Verify reports whether code, sent to phoneE164, matches the stored MAC.
// The comparison takes the same time wherever the first difference is.
func (h *Hasher) Verify(phoneE164, code string, stored []byte) bool {
	return Equal(h.Hash(phoneE164, code), stored)
}

// Equal compares two MACs in constant time.
func Equal(a, b []byte) bool {
	return hmac.Equal(a, b)
}
