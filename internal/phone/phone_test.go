package phone

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

var e164Pattern = regexp.MustCompile(`^\+[1-9]\d{6,14}$`)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{"plain E.164", "+12015550123", "+12015550123"},
		{"US formatted", "+1 (201) 555-0123", "+12015550123"},
		{"dots", "+1.201.555.0123", "+12015550123"},
		{"surrounding whitespace", "  +1 201 555 0123\t\n", "+12015550123"},
		{"00 prefix", "0044 7400 123456", "+447400123456"},
		{"00 prefix no spaces", "00447400123456", "+447400123456"},
		{"UK mobile", "+44 7400 123456", "+447400123456"},
		{"UK trunk zero in parentheses", "+44 (0)20 7946 0958", "+442079460958"},
		{"Italian leading zero kept", "+39 02 3661 8300", "+390236618300"},
		{"German landline", "+49 30 123456", "+4930123456"},
		{"French mobile", "+33 6 12 34 56 78", "+33612345678"},
		{"Japanese mobile", "+81 90-1234-5678", "+819012345678"},
		{"Chinese mobile", "+86 138 0013 8000", "+8613800138000"},
		{"global freephone", "+800 1234 5678", "+80012345678"},
		{"space after plus", "+ 1 201 555 0123", "+12015550123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.raw)
			if err != nil {
				t.Fatalf("Normalize(%q): %v", tt.raw, err)
			}
			if got != tt.want {
				t.Fatalf("Normalize(%q) = %q, want %q", tt.raw, got, tt.want)
			}
			again, err := Normalize(got)
			if err != nil || again != got {
				t.Fatalf("Normalize(%q) = %q, %v; want it unchanged", got, again, err)
			}
		})
	}
}

func TestNormalizeRejects(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		reason string
	}{
		{"empty", "", "empty"},
		{"blank", "   ", "empty"},
		{"too long", "+1 201 555 0123" + strings.Repeat(" ", 20), "too long"},
		{"national format", "(201) 555-0123", "missing international prefix"},
		{"national UK", "07400 123456", "missing international prefix"},
		{"single zero prefix", "0447400123456", "missing international prefix"},
		{"plus not first", "1+2015550123", "unexpected character"},
		{"two pluses", "++12015550123", "unexpected character"},
		{"letters", "+1 800 FLOWERS", "unexpected character"},
		{"extension", "+1 201 555 0123 x12", "unexpected character"},
		{"tel URI", "tel:+12015550123", "unexpected character"},
		{"slash", "+1 201/555 0123", "unexpected character"},
		{"fullwidth digits", "+１２０１５５５", "unexpected character"},
		{"long fullwidth digits", "+１２０１５５５０１２３", "too long"},
		{"arabic-indic digits", "+١٢٠١٥٥٥", "unexpected character"},
		{"plus only", "+", "missing country code"},
		{"zero country code", "+0 201 555 0123", "missing country code"},
		{"unknown country code", "+999 1234 5678", "unparseable"},
		{"fictional 555 range", "+1 555-555-0100", "not a valid number"},
		{"too short", "+44 20 7946", "not a valid number"},
		{"too many digits", "+1 201 555 0123 4567", "not a valid number"},
		{"unassigned range", "+882 1234 5678", "not a valid number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.raw)
			if err == nil {
				t.Fatalf("Normalize(%q) = %q, want an error", tt.raw, got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Normalize(%q) error %v is not ErrInvalid", tt.raw, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Normalize(%q) error %q, want reason %q", tt.raw, err, tt.reason)
			}
			if d := digitsOf(tt.raw); len(d) >= 4 && strings.Contains(err.Error(), d[len(d)-4:]) {
				t.Fatalf("error %q repeats digits of the input", err)
			}
		})
	}
}

// Every region's example number is valid by the library's own metadata, so
// Normalize must accept each one unchanged.
func TestNormalizeExampleNumbers(t *testing.T) {
	var numbers []*phonenumbers.PhoneNumber
	for region := range phonenumbers.GetSupportedRegions() {
		for _, typ := range []phonenumbers.PhoneNumberType{phonenumbers.MOBILE, phonenumbers.FIXED_LINE} {
			if n := phonenumbers.GetExampleNumberForType(region, typ); n != nil {
				numbers = append(numbers, n)
			}
		}
	}
	for code := range phonenumbers.GetSupportedGlobalNetworkCallingCodes() {
		if n := phonenumbers.GetExampleNumberForNonGeoEntity(code); n != nil {
			numbers = append(numbers, n)
		}
	}
	if len(numbers) < 400 {
		t.Fatalf("only %d example numbers; the metadata did not load", len(numbers))
	}
	for _, n := range numbers {
		want := phonenumbers.Format(n, phonenumbers.E164)
		got, err := Normalize(want)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v", want, got, err)
		}
		intl := phonenumbers.Format(n, phonenumbers.INTERNATIONAL)
		if len(intl) > MaxInputLength {
			continue
		}
		if got, err := Normalize(intl); err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", intl, got, err, want)
		}
	}
}

func TestNormalizeLoose(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
		ok   bool
	}{
		{"fictional US test number", "+1 555-555-0100", "+15555550100", true},
		{"fictional US test number E.164", "+15555550101", "+15555550101", true},
		{"valid numbers pass too", "+44 7400 123456", "+447400123456", true},
		{"unassigned but possible", "+882 1234 5678", "+88212345678", true},
		{"local-only length", "+1 555 0100", "", false},
		{"too short for the country", "+44 20 79", "", false},
		{"too long for the country", "+1 555 555 0100 99", "", false},
		{"no prefix", "555-555-0100", "", false},
		{"letters", "+1 555 KLONDIKE", "", false},
		{"unknown country code", "+999 1234 5678", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeLoose(tt.raw)
			if !tt.ok {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("NormalizeLoose(%q) = %q, %v; want ErrInvalid", tt.raw, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeLoose(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
			}
			if again, err := NormalizeLoose(got); err != nil || again != got {
				t.Fatalf("NormalizeLoose(%q) = %q, %v; want it unchanged", got, again, err)
			}
		})
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"+15555550100", "+1******0100"},
		{"+447400123456", "+44******3456"},
		{"+4930123456", "+49****3456"},
		{"+8613800138000", "+86*******8000"},
		{"+80012345678", "+800****5678"},
		{"+358401234567", "+358*****4567"},
		// Too short to keep four: keep fewer so four stay hidden.
		{"+1234567", "+1****67"},
		{"+4412345", "+44****5"},
		{"+35812345", "+358****5"},
		// Unknown calling code: only the world zone digit is kept.
		{"+9991234567890", "+9********7890"},
		// Not E.164: nothing of it is shown.
		{"", "***"},
		{"15555550100", "***"},
		{"+1 555 555 0100", "***"},
		{"+0123456789", "***"},
		{"+1234567890123456", "***"},
		{"+1555555010a", "***"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := Mask(tt.in)
			if got != tt.want {
				t.Fatalf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.in != "" && strings.Contains(got, tt.in[1:]) {
				t.Fatalf("Mask(%q) = %q shows the whole number", tt.in, got)
			}
		})
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"+12015550123", "+1 (201) 555-0123", "0044 7400 123456", "+44 (0)20 7946 0958",
		"+39 02 3661 8300", "+15555550100", "+800 1234 5678", "+", "00", "+0", "",
		"+1 800 FLOWERS", "tel:+12015550123", "+1 201 555 0123 x12", "+١٢٠١٥٥٥",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, normalize := range []func(string) (string, error){Normalize, NormalizeLoose} {
			out, err := normalize(raw)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v is not ErrInvalid", err)
				}
				if out != "" {
					t.Fatalf("output %q alongside error %v", out, err)
				}
				continue
			}
			if !e164Pattern.MatchString(out) {
				t.Fatalf("output %q from %q is not E.164", out, raw)
			}
			again, err := normalize(out)
			if err != nil || again != out {
				t.Fatalf("normalising %q again gave %q, %v", out, again, err)
			}
			if m := Mask(out); strings.Contains(m, out[1:]) {
				t.Fatalf("Mask(%q) = %q shows the whole number", out, m)
			}
		}
		// A number valid by the strict rule is always a possible one.
		if strict, err := Normalize(raw); err == nil {
			if loose, err := NormalizeLoose(raw); err != nil || loose != strict {
				t.Fatalf("NormalizeLoose(%q) = %q, %v; Normalize gave %q", raw, loose, err, strict)
			}
		}
	})
}

func digitsOf(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
