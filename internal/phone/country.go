package phone

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// NoCountry is the Country of a number that belongs to no country: a
// non-geographic range such as +800 or +882 (international freephone,
// satellite and shared-cost services, a favourite of premium-rate fraud),
// or a number the metadata cannot place. No allow-list can name it.
const NoCountry = "001"

// Country returns the ISO 3166-1 alpha-2 region of an E.164 number
// ("+447400123456" is "GB"), as the phone-number library's metadata places
// it: by calling code and, where one code serves several countries (+1,
// +7, +44...), by the number's own range. It returns NoCountry for a
// non-geographic number and for one it cannot place, including anything
// that is not E.164.
func Country(e164 string) string {
	if !isE164(e164) {
		return NoCountry
	}
	n, err := phonenumbers.Parse(e164, "ZZ")
	if err != nil {
		return NoCountry
	}
	r := phonenumbers.GetRegionCodeForNumber(n)
	if len(r) != 2 || r == phonenumbers.UNKNOWN_REGION {
		return NoCountry
	}
	return r
}

// MaxCountriesInput bounds the text ParseCountries reads: every region the
// metadata knows, comma-separated, fits well within it.
const MaxCountriesInput = 4096

// ParseCountries reads a list of ISO 3166-1 alpha-2 codes separated by
// commas and/or white space ("GB,FR, US"), case-insensitive, and returns
// them in upper case, sorted, without repeats; nil for an empty list. A
// code the phone-number metadata does not know as a region with phone
// numbers is an error naming it, so a typo ("UK" for "GB") stops the start
// instead of silently refusing a country.
func ParseCountries(s string) ([]string, error) {
	if len(s) > MaxCountriesInput {
		return nil, fmt.Errorf("list of countries longer than %d characters", MaxCountriesInput)
	}
	known := phonenumbers.GetSupportedRegions()
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}) {
		c := strings.ToUpper(f)
		if len(c) != 2 || !known[c] {
			return nil, fmt.Errorf("%q is not an ISO 3166-1 alpha-2 country code with phone numbers (such as GB, US, FR)", truncate(f, 16))
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// truncate keeps an error message one short line whatever it quotes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
