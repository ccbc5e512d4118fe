package clientaddr

import (
	"net/netip"
	"testing"
)

func TestKey(t *testing.T) {
	cases := []struct {
		ip     string
		prefix int
		want   string
	}{
		{"203.0.113.7", 64, "203.0.113.7"},
		{"::ffff:203.0.113.7", 64, "203.0.113.7"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1%eth0", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:aaaa::1", 48, "2001:db8:1::/48"},
		{"2001:db8:1:2:aaaa::1", 128, "2001:db8:1:2:aaaa::1/128"},
		{"2001:db8:1:2:aaaa::1", 0, "2001:db8:1:2::/64"},
		{"::1", 64, "::/64"},
		{"not-an-ip", 64, "not-an-ip"},
		{"", 64, ""},
	}
	for _, tc := range cases {
		if got := Key(tc.ip, tc.prefix); got != tc.want {
			t.Errorf("Key(%q, %d) = %q, want %q", tc.ip, tc.prefix, got, tc.want)
		}
	}
	// Two addresses of one /64 are one client; of two /64s, two.
	if Key("2001:db8::1", 64) != Key("2001:db8::ffff:1", 64) {
		t.Error("two addresses of one /64 keyed apart")
	}
	if Key("2001:db8:0:1::1", 64) == Key("2001:db8:0:2::1", 64) {
		t.Error("two /64s keyed together")
	}
}

// Whatever X-Forwarded-For names, the key is the address itself (IPv4),
// a network that holds the address (IPv6), or the string untouched.
func FuzzKey(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1%eth0", "x", ""} {
		f.Add(s, 64)
	}
	f.Fuzz(func(t *testing.T, ip string, prefix int) {
		k := Key(ip, prefix)
		a, err := netip.ParseAddr(ip)
		if err != nil {
			if k != ip {
				t.Fatalf("Key(%q) = %q: not an address, want it unchanged", ip, k)
			}
			return
		}
		a = a.WithZone("").Unmap()
		if a.Is4() {
			if k != a.String() {
				t.Fatalf("Key(%q) = %q, want %q", ip, k, a)
			}
			return
		}
		p, err := netip.ParsePrefix(k)
		if err != nil {
			t.Fatalf("Key(%q) = %q, not a network: %v", ip, k, err)
		}
		want := prefix
		if want <= 0 || want > 128 {
			want = DefaultIPv6Prefix
		}
		if p.Bits() != want || !p.Contains(a) || p != p.Masked() {
			t.Fatalf("Key(%q, %d) = %q: want the /%d that holds it", ip, prefix, k, want)
		}
	})
}
