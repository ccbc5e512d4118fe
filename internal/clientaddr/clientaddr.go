// Package clientaddr names a client by its network address for the limits
// that count per client: the shield and every per-IP policy.
//
// One party often holds many addresses. An IPv6 subscriber line or cloud
// host gets at least a /64, 2^64 addresses to rotate through, so counting
// per address would let one party multiply its budget at will and fill
// memory with keys. Addresses are therefore keyed by the network that one
// party holds: an IPv6 address by its first Prefix bits (64 by default), an
// IPv4 address whole (/32), since IPv4 blocks are shared by carrier NAT and
// a wider key would lump strangers together.
//
// It takes the address as a string and imports nothing of Caddy's: which
// address a request comes from (the trusted proxy's X-Forwarded-For) is
// internal/httpapi's Client.
package clientaddr

import "net/netip"

// DefaultIPv6Prefix is the IPv6 prefix length a client is keyed by.
const DefaultIPv6Prefix = 64

// Key is the name of the client at ip for per-client limits: the IPv4
// address ("203.0.113.7"; an IPv4-mapped IPv6 address counts as IPv4), or
// the IPv6 network of its first v6Prefix bits ("2001:db8:1:2::/64"). A
// string that is not an IP address is returned unchanged, so it still
// keys something rather than nothing.
func Key(ip string, v6Prefix int) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return a.String()
	}
	if v6Prefix <= 0 || v6Prefix > 128 {
		v6Prefix = DefaultIPv6Prefix
	}
	p, err := a.Prefix(v6Prefix)
	if err != nil {
		return a.String()
	}
	return p.String()
}
