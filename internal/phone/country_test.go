package phone

import (
	"slices"
	"strings"
	"testing"
)

func TestCountry(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"+447400123456", "GB"},
		{"+12015550123", "US"},
		{"+16135550123", "CA"}, // +1 is shared: the range decides
		{"+33612345678", "FR"},
		{"+390236618300", "IT"},
		{"+80012345678", NoCountry}, // international freephone
		{"+882345678901", NoCountry},
		{"", NoCountry},
		{"447400123456", NoCountry},
		{"+44 7400 123456", NoCountry}, // not E.164
	} {
		if got := Country(tc.in); got != tc.want {
			t.Errorf("Country(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseCountries(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  ", nil},
		{",", nil},
		{"GB", []string{"GB"}},
		{"gb,fr, US", []string{"FR", "GB", "US"}},
		{"GB FR\tGB", []string{"FR", "GB"}},
	} {
		got, err := ParseCountries(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseCountries(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, named string }{
		{"GB,UK", `"UK"`},
		{"XX", `"XX"`},
		{"GBR", `"GBR"`},
		{"G", `"G"`},
		{"001", `"001"`}, // the library's non-geographic region is no country
		{"ZZ", `"ZZ"`},
		{"GB;FR", `"GB;FR"`},
	} {
		_, err := ParseCountries(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.named) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseCountries(%q) = %v; want one line naming %s", tc.in, err, tc.named)
		}
	}
	if _, err := ParseCountries(strings.Repeat("GB,", MaxCountriesInput)); err == nil {
		t.Error("an overlong list was accepted")
	}
}

func FuzzParseCountries(f *testing.F) {
	for _, s := range []string{"", "GB", "gb,fr, US", "GB,UK", "001", "ZZ", "G\u00e9", "GB,,FR", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseCountries(s)
		if err != nil {
			if got != nil {
				t.Fatalf("result %v alongside error %v", got, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error of more than one line: %q", err)
			}
			return
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("result %v not sorted and unique", got)
		}
		for _, c := range got {
			if len(c) != 2 || c != strings.ToUpper(c) || c == NoCountry {
				t.Fatalf("result %v holds %q", got, c)
			}
		}
		// The result reads back as itself.
		again, err := ParseCountries(strings.Join(got, ","))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("reading %v back gave %v, %v", got, again, err)
		}
	})
}
