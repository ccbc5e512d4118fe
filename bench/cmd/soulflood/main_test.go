package main

import (
	"net/netip"
	"testing"
)

func TestIPv4Addresses(t *testing.T) {
	seen := map[netip.Addr]bool{}
	for _, i := range spread(1_000_000) {
		a := ipv4Addr(i)
		if !a.Is4() || a.IsPrivate() || a.IsLoopback() || a.IsMulticast() || a.IsUnspecified() {
			t.Fatalf("address %d: %s is not a public IPv4 address", i, a)
		}
		if seen[a] {
			t.Fatalf("address %d: %s twice", i, a)
		}
		seen[a] = true
		if p, err := netip.ParseAddr(a.String()); err != nil || p != a {
			t.Fatalf("address %d: %s does not parse back: %v", i, a, err)
		}
	}
	if got := ipv4Addr(0).String(); got != "11.0.0.0" {
		t.Errorf("first address %s, want 11.0.0.0", got)
	}
}

func TestIPv6Net64Addresses(t *testing.T) {
	doc := netip.MustParsePrefix("2001:db8::/32")
	nets := map[netip.Prefix]bool{}
	for _, i := range spread(1_000_000) {
		a := ipv6Net64(i)
		if !a.Is6() || a.Is4In6() || !doc.Contains(a) {
			t.Fatalf("address %d: %s is not in %s", i, a, doc)
		}
		p := netip.PrefixFrom(a, 64).Masked()
		if nets[p] {
			t.Fatalf("address %d: %s is in %s, already used", i, a, p)
		}
		nets[p] = true
		if q, err := netip.ParseAddr(a.String()); err != nil || q != a {
			t.Fatalf("address %d: %s does not parse back: %v", i, a, err)
		}
	}
	// The last /64 of the range is still distinct from the first.
	if netip.PrefixFrom(ipv6Net64(maxRequests-1), 64).Masked() == netip.PrefixFrom(ipv6Net64(0), 64).Masked() {
		t.Error("the last request's /64 is the first's")
	}
}

func TestIPv6One64Addresses(t *testing.T) {
	want := netip.MustParsePrefix("2001:db8:5001:1::/64")
	seen := map[netip.Addr]bool{}
	for _, i := range spread(1_000_000) {
		a := ipv6One64(i)
		if !want.Contains(a) {
			t.Fatalf("address %d: %s is not in %s", i, a, want)
		}
		if seen[a] {
			t.Fatalf("address %d: %s twice", i, a)
		}
		seen[a] = true
	}
}

// spread is 0..n-1 and a few indexes near the end of the range.
func spread(n uint64) []uint64 {
	out := make([]uint64, 0, n+3)
	for i := uint64(0); i < n; i++ {
		out = append(out, i)
	}
	return append(out, maxRequests-3, maxRequests-2, maxRequests-1)
}

func TestMix(t *testing.T) {
	mix, err := parseMix("moods=90,otp=9,openapi=1")
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	const n = 100_000
	for i := uint64(0); i < n; i++ {
		counts[pick(mix, i)]++
	}
	for name, want := range map[string]int{"moods": 90_000, "otp": 9_000, "openapi": 1_000} {
		if got := counts[name]; got < want*9/10 || got > want*11/10 {
			t.Errorf("%s: %d of %d requests, want about %d", name, got, n, want)
		}
	}
	if got := formatMix(mix); got != "moods=90,otp=9,openapi=1" {
		t.Errorf("formatMix = %q", got)
	}
	for _, bad := range []string{"", "moods", "moods=x", "nope=1", "moods=-1", "moods=0"} {
		if _, err := parseMix(bad); err == nil {
			t.Errorf("parseMix(%q) accepted", bad)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 1.2345678e+07
soul_shield_keys{zone="shield"} 42
soul_rate_limit_memory_entries{policy="default",rule="a b"} 7 1700000000000
`
	m := parseMetrics([]byte(text))
	for name, want := range map[string]float64{
		"go_memstats_heap_inuse_bytes":                                12345678,
		`soul_shield_keys{zone="shield"}`:                             42,
		`soul_rate_limit_memory_entries{policy="default",rule="a b"}`: 7,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("%s = %v (%v), want %v", name, got, ok, want)
		}
	}
	if len(m) != 3 {
		t.Errorf("%d samples, want 3: %v", len(m), m)
	}
}

func TestFormatStatuses(t *testing.T) {
	if got := formatStatuses(map[int]int{200: 10, 401: 900, 429: 90}); got != "401:900,429:90,200:10" {
		t.Errorf("formatStatuses = %q", got)
	}
}
