package token

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestNewRefreshToken(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		plain, hash := NewRefreshToken()
		if !strings.HasPrefix(plain, RefreshPrefix) {
			t.Fatalf("%q lacks the %q prefix", plain, RefreshPrefix)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(plain, RefreshPrefix))
		if err != nil || len(raw) != 32 {
			t.Fatalf("body of %q decodes to %d bytes, %v; want 32", plain, len(raw), err)
		}
		if !WellFormedRefreshToken(plain) {
			t.Fatalf("WellFormedRefreshToken(%q) = false", plain)
		}
		if !bytes.Equal(hash, HashRefreshToken(plain)) {
			t.Fatal("returned hash differs from HashRefreshToken")
		}
		if len(hash) != 32 {
			t.Fatalf("hash is %d bytes", len(hash))
		}
		if seen[plain] {
			t.Fatalf("token %q repeated", plain)
		}
		seen[plain] = true
	}
}

func TestHashRefreshToken(t *testing.T) {
	// Stored hashes outlive deployments, so the stored form is pinned to
	// plain SHA-256 of the whole token (value from sha256sum).
	const want = "06705e730833d1425998993172857e5de3b7a5db5e5ad97a9077c59f33205d25"
	if got := hex.EncodeToString(HashRefreshToken("rt_")); got != want {
		t.Fatalf("HashRefreshToken(\"rt_\") = %s, want %s", got, want)
	}
	if bytes.Equal(HashRefreshToken("rt_a"), HashRefreshToken("rt_b")) {
		t.Fatal("different tokens share a hash")
	}
}

func TestEqualRefreshHash(t *testing.T) {
	_, a := NewRefreshToken()
	_, b := NewRefreshToken()
	tests := []struct {
		name string
		x, y []byte
		want bool
	}{
		{"same", a, append([]byte(nil), a...), true},
		{"different", a, b, false},
		{"prefix", a, a[:16], false},
		{"empty", a, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EqualRefreshHash(tt.x, tt.y); got != tt.want {
				t.Fatalf("EqualRefreshHash = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWellFormedRefreshToken(t *testing.T) {
	zeros := RefreshPrefix + strings.Repeat("A", 43)
	tests := []struct {
		name string
		s    string
		want bool
	}{
		{"all zero bytes", zeros, true},
		{"url alphabet", RefreshPrefix + strings.Repeat("-_", 21) + "A", true},
		{"empty", "", false},
		{"prefix only", RefreshPrefix, false},
		{"wrong prefix", "rx_" + strings.Repeat("A", 43), false},
		{"no prefix", strings.Repeat("A", 46), false},
		{"short", zeros[:len(zeros)-1], false},
		{"long", zeros + "A", false},
		{"standard alphabet", RefreshPrefix + strings.Repeat("+/", 21) + "A", false},
		{"padding", RefreshPrefix + strings.Repeat("A", 42) + "=", false},
		{"newline", RefreshPrefix + strings.Repeat("A", 42) + "\n", false},
		{"dot", RefreshPrefix + strings.Repeat("A", 42) + ".", false},
		// The last character carries two unused bits; only zero is canonical.
		{"non-zero trailing bits", RefreshPrefix + strings.Repeat("A", 42) + "B", false},
		{"access token", "eyJhbGciOiJIUzI1NiJ9.e30.abc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WellFormedRefreshToken(tt.s); got != tt.want {
				t.Fatalf("WellFormedRefreshToken(%q) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}
