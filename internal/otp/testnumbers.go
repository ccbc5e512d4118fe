package otp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TestNumbers are phone numbers with fixed codes (OTP_TEST_NUMBERS), for app
// store review and smoke tests: signing in with one sends no SMS. They carry
// a mandatory end date (OTP_TEST_NUMBERS_VALID_UNTIL) so that a fixed code
// cannot outlive its purpose by being forgotten in the environment.
// The zero value lists no numbers.
type TestNumbers struct {
	codes      map[string]string
	validUntil time.Time
}

// ParseTestNumbers reads spec, a comma-separated list of number=code pairs
// such as "+15555550100=123456, +15555550101=654321", and validUntil, an
// RFC 3339 time that is required when spec lists any number (and refused
// when malformed even if spec is empty: it is a typo either way). Each
// number is passed through normalize, which gives the key that lookups use;
// the caller supplies it so that fictional ranges (+1 555-555-01xx) can be
// listed. Errors name the entry by its 1-based position and never repeat a
// number or a code, since they end up in startup logs.
func ParseTestNumbers(spec, validUntil string, normalize func(string) (string, error)) (TestNumbers, error) {
	if normalize == nil {
		return TestNumbers{}, errors.New("test numbers: no normalize function")
	}
	var tn TestNumbers
	validUntil = strings.TrimSpace(validUntil)
	if validUntil != "" {
		t, err := time.Parse(time.RFC3339, validUntil)
		if err != nil {
			return TestNumbers{}, errors.New("test numbers: valid-until is not an RFC 3339 time")
		}
		tn.validUntil = t
	}

	index := make(map[string]int)
	for i, entry := range strings.Split(spec, ",") {
		n := i + 1
		entry = strings.TrimSpace(entry)
		if entry == "" {
			// Tolerates a trailing comma or an entirely empty list.
			continue
		}
		number, code, ok := strings.Cut(entry, "=")
		if !ok {
			return TestNumbers{}, fmt.Errorf("test numbers: entry %d: want number=code", n)
		}
		code = strings.TrimSpace(code)
		if !WellFormedCode(code) {
			return TestNumbers{}, fmt.Errorf("test numbers: entry %d: code must be exactly %d digits", n, CodeLength)
		}
		e164, err := normalize(strings.TrimSpace(number))
		if err != nil || e164 == "" {
			return TestNumbers{}, fmt.Errorf("test numbers: entry %d: invalid phone number", n)
		}
		if prev, dup := index[e164]; dup {
			return TestNumbers{}, fmt.Errorf("test numbers: entry %d: same number as entry %d", n, prev)
		}
		index[e164] = n
		if tn.codes == nil {
			tn.codes = make(map[string]string)
		}
		tn.codes[e164] = code
	}

	if len(tn.codes) > 0 && tn.validUntil.IsZero() {
		return TestNumbers{}, errors.New("test numbers: valid-until is required when test numbers are set")
	}
	return tn, nil
}

// Len is the number of listed numbers.
func (tn TestNumbers) Len() int { return len(tn.codes) }

// ValidUntil is the instant from which the numbers stop being honoured; zero
// when none are listed.
func (tn TestNumbers) ValidUntil() time.Time { return tn.validUntil }

// Lookup returns the fixed code for a listed number, while now is before
// ValidUntil. Afterwards every number is treated as an ordinary one.
func (tn TestNumbers) Lookup(e164 string, now time.Time) (code string, ok bool) {
	if !now.Before(tn.validUntil) {
		return "", false
	}
	code, ok = tn.codes[e164]
	return code, ok
}

// Match reports whether code is the fixed code of a listed number that is
// still honoured at now. The code comparison takes constant time.
func (tn TestNumbers) Match(e164, code string, now time.Time) bool {
	want, ok := tn.Lookup(e164, now)
	eq := subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1
	return ok && eq
}
