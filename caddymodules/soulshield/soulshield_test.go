package soulshield_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/soulapp/soul/soultest"
)

// start serves the production Caddyfile behind a trusted proxy (this test,
// at 127.0.0.1), as Railway's edge forwards clients.
func start(t *testing.T, env map[string]string) *soultest.Server {
	t.Helper()
	e := map[string]string{
		"TRUSTED_PROXIES":          "127.0.0.1/32",
		"RATE_LIMIT_SHIELD_EVENTS": "5",
		"RATE_LIMIT_SHIELD_WINDOW": "1m",
		// The default policy out of the way: only the shield refuses here.
		"RATE_LIMIT_DEFAULT_LIMIT": "1000000",
	}
	for k, v := range env {
		e[k] = v
	}
	return soultest.Start(t, soultest.Options{Database: soultest.SQLite, Env: e})
}

// status sends GET /api/moods (no token: 401 once past the limits) from
// the client at addr.
func status(s *soultest.Server, addr string) int {
	return s.Do(http.MethodGet, "/api/moods", nil, "X-Forwarded-For", addr).StatusCode
}

// An IPv6 client is its /64 (RATE_LIMIT_IPV6_PREFIX): rotating addresses
// inside it buys nothing, another /64 is another client, and an IPv4
// client is its address.
func TestClientsByNetwork(t *testing.T) {
	cases := []struct {
		name      string
		prefix    string
		same      []string // one client, address by address
		other     string   // another client
		sameAfter string   // the first client again, by another address
	}{
		{
			name:      "ipv6 by /64",
			same:      []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3", "2001:db8:1:2:1:2:3:4", "2001:db8:1:2::5"},
			other:     "2001:db8:1:3::1",
			sameAfter: "2001:db8:1:2:dead:beef::1",
		},
		{
			name:      "ipv6 by /48",
			prefix:    "48",
			same:      []string{"2001:db8:1:2::1", "2001:db8:1:3::1", "2001:db8:1:4::1", "2001:db8:1:5::1", "2001:db8:1:6::1"},
			other:     "2001:db8:2::1",
			sameAfter: "2001:db8:1:ffff::1",
		},
		{
			name:      "ipv4 by address",
			same:      []string{"198.18.0.1", "198.18.0.1", "198.18.0.1", "198.18.0.1", "::ffff:198.18.0.1"},
			other:     "198.18.0.2",
			sameAfter: "198.18.0.1",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			if tc.prefix != "" {
				env["RATE_LIMIT_IPV6_PREFIX"] = tc.prefix
			}
			s := start(t, env)
			for i, a := range tc.same {
				if got := status(s, a); got != http.StatusUnauthorized {
					t.Fatalf("request %d from %s: %d, want 401", i+1, a, got)
				}
			}
			if got := status(s, tc.sameAfter); got != http.StatusTooManyRequests {
				t.Fatalf("6th request of the client, from %s: %d, want 429", tc.sameAfter, got)
			}
			if got := status(s, tc.other); got != http.StatusUnauthorized {
				t.Fatalf("another client %s: %d, want 401", tc.other, got)
			}
		})
	}
}

// A flood of distinct /64s leaves the shield's memory where it was, and a
// client that sent little is still admitted; the shield's figures are on
// /metrics.
func TestFloodOfNetworks(t *testing.T) {
	s := start(t, map[string]string{"RATE_LIMIT_SHIELD_EVENTS": "300"})
	for i := 0; i < 3000; i++ {
		addr := fmt.Sprintf("2001:db8:%x:%x::1", i/65536, i%65536)
		if got := status(s, addr); got != http.StatusUnauthorized {
			t.Fatalf("flood request %d from %s: %d, want 401", i, addr, got)
		}
	}
	if got := status(s, "2001:db8:ffff:ffff::1"); got != http.StatusUnauthorized {
		t.Fatalf("a quiet client after the flood: %d", got)
	}
	m := s.Metrics(t)
	if v := m["soul_shield_memory_bytes"]; v != 2*4*65536*4 {
		t.Errorf("soul_shield_memory_bytes %v, want the fixed 2 MiB", v)
	}
	if v := m["soul_shield_clients"]; v < 2500 || v > 3500 {
		t.Errorf("soul_shield_clients %v after 3001 networks", v)
	}
	if v := m["soul_rate_limit_memory_keys"]; v < 3000 || v > 3001+10 {
		t.Errorf("soul_rate_limit_memory_keys %v, want one per network", v)
	}
}
