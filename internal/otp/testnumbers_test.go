package otp

import (
	"strings"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/phone"
)

const until = "2026-06-30T23:59:59Z"

var untilTime = time.Date(2026, 6, 30, 23, 59, 59, 0, time.UTC)

func TestParseTestNumbers(t *testing.T) {
	tn, err := ParseTestNumbers(" +15555550100=123456 ,\t+1 (555) 555-0101 = 654321,\n0044 7400 123456=000000, ", until, phone.NormalizeLoose)
	if err != nil {
		t.Fatalf("ParseTestNumbers: %v", err)
	}
	if tn.Len() != 3 {
		t.Fatalf("Len = %d, want 3", tn.Len())
	}
	if !tn.ValidUntil().Equal(untilTime) {
		t.Fatalf("ValidUntil = %v", tn.ValidUntil())
	}
	before := untilTime.Add(-time.Second)
	tests := []struct {
		name   string
		number string
		at     time.Time
		code   string
		ok     bool
	}{
		{"first", "+15555550100", before, "123456", true},
		{"formatted entry", "+15555550101", before, "654321", true},
		{"00 prefix entry", "+447400123456", before, "000000", true},
		{"long before", "+15555550100", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), "123456", true},
		{"at valid-until", "+15555550100", untilTime, "", false},
		{"after valid-until", "+15555550100", untilTime.Add(time.Nanosecond), "", false},
		{"unlisted", "+15555550102", before, "", false},
		// Lookups are by E.164 only; normalising is the caller's job.
		{"not normalised", "+1 555 555 0100", before, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, ok := tn.Lookup(tt.number, tt.at)
			if code != tt.code || ok != tt.ok {
				t.Fatalf("Lookup = %q, %v; want %q, %v", code, ok, tt.code, tt.ok)
			}
		})
	}
}

func TestParseTestNumbersEmpty(t *testing.T) {
	tests := []struct {
		name, spec, until string
	}{
		{"nothing", "", ""},
		{"blank", "  ", ""},
		{"commas only", " , ,", ""},
		{"date without numbers", "", until},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn, err := ParseTestNumbers(tt.spec, tt.until, phone.NormalizeLoose)
			if err != nil {
				t.Fatalf("ParseTestNumbers: %v", err)
			}
			if tn.Len() != 0 {
				t.Fatalf("Len = %d", tn.Len())
			}
			if _, ok := tn.Lookup("+15555550100", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)); ok {
				t.Fatal("Lookup found a number in an empty list")
			}
		})
	}
	var zero TestNumbers
	if _, ok := zero.Lookup("+15555550100", time.Time{}); ok {
		t.Fatal("zero TestNumbers found a number")
	}
}

func TestParseTestNumbersErrors(t *testing.T) {
	tests := []struct {
		name  string
		spec  string
		until string
		want  string
	}{
		{"no equals sign", "+15555550100=123456,+15555550101", until, "entry 2: want number=code"},
		{"short code", "+15555550100=12345", until, "entry 1: code must be exactly 6 digits"},
		{"long code", "+15555550100=1234567", until, "entry 1: code must be exactly 6 digits"},
		{"letters in code", "+15555550100=12a456", until, "entry 1: code must be exactly 6 digits"},
		{"spaces inside code", "+15555550100=123 456", until, "entry 1: code must be exactly 6 digits"},
		{"fullwidth code", "+15555550100=１２３４５６", until, "entry 1: code must be exactly 6 digits"},
		{"empty code", "+15555550100=", until, "entry 1: code must be exactly 6 digits"},
		{"two equals signs", "+15555550100=123456=1", until, "entry 1: code must be exactly 6 digits"},
		{"empty number", "=123456", until, "entry 1: invalid phone number"},
		{"national number", "5555550100=123456", until, "entry 1: invalid phone number"},
		{"too short", "+1555=123456", until, "entry 1: invalid phone number"},
		{"duplicate", "+15555550100=123456,+15555550101=111111,+1 555-555-0100=654321", until, "entry 3: same number as entry 1"},
		{"index counts blank entries", "+15555550100=123456,,+15555550100=123456", until, "entry 3: same number as entry 1"},
		{"numbers without date", "+15555550100=123456", "", "valid-until is required"},
		{"numbers with blank date", "+15555550100=123456", "  ", "valid-until is required"},
		{"date without zone", "+15555550100=123456", "2026-06-30T23:59:59", "not an RFC 3339 time"},
		{"date only", "+15555550100=123456", "2026-06-30", "not an RFC 3339 time"},
		{"bad date, no numbers", "", "next week", "not an RFC 3339 time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn, err := ParseTestNumbers(tt.spec, tt.until, phone.NormalizeLoose)
			if err == nil {
				t.Fatalf("ParseTestNumbers accepted it: %d numbers", tn.Len())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want %q", err, tt.want)
			}
			for _, secret := range []string{"5555550100", "5555550101", "123456", "654321", "12345", "1234567"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q repeats a number or a code", err)
				}
			}
			if tn.Len() != 0 {
				t.Fatalf("numbers returned alongside an error")
			}
		})
	}
}

func TestParseTestNumbersNormalizer(t *testing.T) {
	if _, err := ParseTestNumbers("+15555550100=123456", until, nil); err == nil {
		t.Fatal("nil normalize accepted")
	}
	// The strict rule refuses the fictional range: the caller must pass the
	// loose one to list such numbers.
	if _, err := ParseTestNumbers("+15555550100=123456", until, phone.Normalize); err == nil {
		t.Fatal("phone.Normalize accepted a fictional number")
	}
	tn, err := ParseTestNumbers("+44 7400 123456=123456", until, phone.Normalize)
	if err != nil {
		t.Fatalf("a real number with phone.Normalize: %v", err)
	}
	if _, ok := tn.Lookup("+447400123456", untilTime.Add(-time.Hour)); !ok {
		t.Fatal("real number not found")
	}
}

func TestTestNumbersMatch(t *testing.T) {
	tn, err := ParseTestNumbers("+15555550100=123456,+15555550101=000000", until, phone.NormalizeLoose)
	if err != nil {
		t.Fatal(err)
	}
	before := untilTime.Add(-time.Minute)
	tests := []struct {
		name         string
		number, code string
		at           time.Time
		want         bool
	}{
		{"right code", "+15555550100", "123456", before, true},
		{"all zeros", "+15555550101", "000000", before, true},
		{"wrong code", "+15555550100", "123457", before, false},
		{"other number's code", "+15555550100", "000000", before, false},
		{"prefix of code", "+15555550100", "12345", before, false},
		{"empty code", "+15555550100", "", before, false},
		{"expired", "+15555550100", "123456", untilTime, false},
		{"unlisted", "+15555550102", "123456", before, false},
		{"unlisted, empty code", "+15555550102", "", before, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tn.Match(tt.number, tt.code, tt.at); got != tt.want {
				t.Fatalf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseTestNumbers(f *testing.F) {
	f.Add("+15555550100=123456,+15555550101=654321", until)
	f.Add(" +1 (555) 555-0100 = 123456 , ", "2026-06-30T23:59:59.5+02:00")
	f.Add("+15555550100=123456,+15555550100=123456", until)
	f.Add("=,=,==", "")
	f.Add("+15555550100", until)
	f.Add("", "not a date")
	f.Add("+447400123456=000000", "9999-12-31T23:59:59Z")
	f.Fuzz(func(t *testing.T, spec, validUntil string) {
		tn, err := ParseTestNumbers(spec, validUntil, phone.NormalizeLoose)
		if err != nil {
			if tn.Len() != 0 {
				t.Fatal("numbers returned alongside an error")
			}
			return
		}
		if tn.Len() == 0 {
			return
		}
		end := tn.ValidUntil()
		if end.IsZero() {
			t.Fatal("numbers listed without an end date")
		}
		listed := 0
		for entry := range strings.SplitSeq(spec, ",") {
			number, code, ok := strings.Cut(entry, "=")
			if !ok {
				continue
			}
			e164, err := phone.NormalizeLoose(strings.TrimSpace(number))
			if err != nil {
				t.Fatalf("an entry with an invalid number was accepted")
			}
			got, ok := tn.Lookup(e164, end.Add(-time.Nanosecond))
			if !ok || got != strings.TrimSpace(code) || !WellFormedCode(got) {
				t.Fatalf("Lookup = %q, %v for an accepted entry", got, ok)
			}
			if !tn.Match(e164, got, end.Add(-time.Nanosecond)) {
				t.Fatal("Match refused an accepted entry's code")
			}
			if _, ok := tn.Lookup(e164, end); ok {
				t.Fatal("Lookup honoured a number at its end date")
			}
			listed++
		}
		if listed != tn.Len() {
			t.Fatalf("%d entries, Len %d", listed, tn.Len())
		}
	})
}
