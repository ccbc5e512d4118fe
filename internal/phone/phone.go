// Package phone turns the phone numbers people type into the one E.164 form
// that accounts, OTP challenges and rate limits are keyed on.
package phone

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalid is returned, wrapped with a short reason, for any input that is
// not an acceptable phone number. The reason never repeats the input, so the
// error is safe to log.
var ErrInvalid = errors.New("invalid phone number")

// MaxInputLength bounds the raw input. It is generous for any formatted
// number and keeps junk away from the parser, which can be slow on it.
const MaxInputLength = 32

// Normalize returns raw in E.164 form ("+447400123456"). The input must carry
// an international prefix ("+" or "00") because the API has no notion of a
// caller's home region; spaces, dashes, dots and parentheses are accepted as
// formatting. Only numbers the phone-number library calls valid are accepted:
// a merely possible number is usually a typo, and sending it a code costs
// money and helps nobody.
func Normalize(raw string) (string, error) {
	n, err := parse(raw)
	if err != nil {
		return "", err
	}
	// Valid and diallable in full from abroad: the library calls some
	// seven-digit +1 numbers valid that are only possible locally.
	if !phonenumbers.IsValidNumber(n) || !possible(n) {
		return "", fmt.Errorf("%w: not a valid number", ErrInvalid)
	}
	return format(n, true)
}

// NormalizeLoose is Normalize without the validity check: the input only has
// to parse and have a full, internationally diallable length for its country
// (a local-only length such as a US seven-digit number is refused). It exists for numbers
// the operator lists as test numbers (OTP_TEST_NUMBERS), which are usually
// fictional ranges such as +1 555-555-01xx that the library rightly calls
// invalid. Callers use it only to recognise a listed test number; every other
// number goes through Normalize.
func NormalizeLoose(raw string) (string, error) {
	n, err := parse(raw)
	if err != nil {
		return "", err
	}
	if !possible(n) {
		return "", fmt.Errorf("%w: not a possible number", ErrInvalid)
	}
	return format(n, false)
}

// parse checks the characters itself and hands the library a plain
// "+digits" string, so the library's more permissive input handling (letters,
// extensions, "tel:" URIs, non-ASCII digits) never widens what we accept.
func parse(raw string) (*phonenumbers.PhoneNumber, error) {
	if len(raw) > MaxInputLength {
		return nil, fmt.Errorf("%w: too long", ErrInvalid)
	}
	s := strings.TrimSpace(raw)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalid)
	}

	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '+' && i == 0:
			b.WriteByte(c)
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return nil, fmt.Errorf("%w: unexpected character", ErrInvalid)
		}
	}
	digits := b.String()
	switch {
	case strings.HasPrefix(digits, "+"):
	case strings.HasPrefix(digits, "00"):
		digits = "+" + digits[2:]
	default:
		return nil, fmt.Errorf("%w: missing international prefix", ErrInvalid)
	}
	if len(digits) < 2 || digits[1] == '0' {
		return nil, fmt.Errorf("%w: missing country code", ErrInvalid)
	}

	n, err := phonenumbers.Parse(digits, "ZZ")
	if err != nil {
		return nil, fmt.Errorf("%w: unparseable", ErrInvalid)
	}
	return n, nil
}

// format renders n as E.164 and insists that the result reads back as itself.
// Everything downstream keys on this string, so a number whose E.164 form
// would normalise to something else (the library may strip what looks like a
// national prefix on a second pass) is refused rather than stored under a key
// that later lookups would miss.
func format(n *phonenumbers.PhoneNumber, strict bool) (string, error) {
	out := phonenumbers.Format(n, phonenumbers.E164)
	if !isE164(out) {
		return "", fmt.Errorf("%w: not representable in E.164", ErrInvalid)
	}
	again, err := phonenumbers.Parse(out, "ZZ")
	if err != nil || phonenumbers.Format(again, phonenumbers.E164) != out {
		return "", fmt.Errorf("%w: ambiguous", ErrInvalid)
	}
	if strict && (!phonenumbers.IsValidNumber(again) || !possible(again)) {
		return "", fmt.Errorf("%w: ambiguous", ErrInvalid)
	}
	if !strict && !possible(again) {
		return "", fmt.Errorf("%w: ambiguous", ErrInvalid)
	}
	return out, nil
}

func possible(n *phonenumbers.PhoneNumber) bool {
	return phonenumbers.IsPossibleNumberWithReason(n) == phonenumbers.IS_POSSIBLE
}

// isE164 reports whether s matches ^\+[1-9]\d{6,14}$.
func isE164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Mask hides the middle of an E.164 number for logs, keeping the country
// code and the last four digits: "+15555550100" becomes "+1******0100".
// Short numbers keep fewer trailing digits so that at least four are always
// hidden. Anything not shaped like E.164 is hidden entirely, since it may be
// raw user input.
func Mask(e164 string) string {
	if !isE164(e164) {
		return "***"
	}
	digits := e164[1:]
	cc := countryCodeLength(digits)
	rest := len(digits) - cc
	tail := 4
	if rest-tail < 4 {
		tail = max(rest-4, 0)
	}
	return "+" + digits[:cc] + strings.Repeat("*", rest-tail) + digits[len(digits)-tail:]
}

// countryCodeLength returns how many leading digits form the country calling
// code. Calling codes are prefix-free, so the first known prefix is the one;
// for an unknown code only the first digit (the world zone) is kept.
func countryCodeLength(digits string) int {
	known := phonenumbers.GetSupportedCallingCodes()
	code := 0
	for i := 0; i < 3 && i < len(digits); i++ {
		code = code*10 + int(digits[i]-'0')
		if known[code] {
			return i + 1
		}
	}
	return 1
}
