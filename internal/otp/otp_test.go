package otp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

func TestNewCode(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		code, err := NewCode()
		if err != nil {
			t.Fatalf("NewCode: %v", err)
		}
		if !WellFormedCode(code) {
			t.Fatalf("NewCode = %q, want %d digits", code, CodeLength)
		}
		seen[code] = true
	}
	// 1000 draws from a million codes repeat with probability about 0.4; far
	// fewer distinct codes means the source is broken.
	if len(seen) < 990 {
		t.Fatalf("only %d distinct codes in 1000", len(seen))
	}
}

// samples is a reader yielding the given 32-bit values, big-endian.
func samples(vs ...uint32) *bytes.Reader {
	b := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return bytes.NewReader(b)
}

func TestNewCodeRejectionSampling(t *testing.T) {
	tests := []struct {
		name    string
		samples []uint32
		want    string
	}{
		{"zero", []uint32{0}, "000000"},
		{"leading zeros kept", []uint32{42}, "000042"},
		{"plain", []uint32{123456}, "123456"},
		{"wraps", []uint32{1_123_456}, "123456"},
		{"last accepted sample", []uint32{4_293_999_999}, "999999"},
		// Values from 4294000000 up would map onto 000000..967295 a second
		// time; they must be drawn again, not folded.
		{"first rejected sample", []uint32{4_294_000_000, 7}, "000007"},
		{"largest sample", []uint32{4_294_967_295, 8}, "000008"},
		{"several rejections", []uint32{4_294_500_000, 4_294_967_295, 4_294_000_001, 654321}, "654321"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newCode(samples(tt.samples...))
			if err != nil {
				t.Fatalf("newCode: %v", err)
			}
			if got != tt.want {
				t.Fatalf("newCode = %q, want %q", got, tt.want)
			}
		})
	}
	if sampleLimit != 4_294_000_000 {
		t.Fatalf("sampleLimit = %d", sampleLimit)
	}
}

func TestNewCodeReadError(t *testing.T) {
	if code, err := newCode(samples(4_294_967_295)); err == nil {
		t.Fatalf("newCode with an exhausted source = %q, want an error", code)
	}
	if code, err := newCode(bytes.NewReader([]byte{1, 2})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("newCode with a short read = %q, %v; want io.ErrUnexpectedEOF", code, err)
	}
}

// Each digit position should be uniform. The threshold is the chi-square
// value (9 degrees of freedom) exceeded by chance with probability ~1e-9,
// so a failure means a real skew such as a stuck or missing digit.
func TestNewCodeDigitsUniform(t *testing.T) {
	const draws = 50_000
	var counts [CodeLength][10]int
	for range draws {
		code, err := NewCode()
		if err != nil {
			t.Fatal(err)
		}
		for i := range CodeLength {
			counts[i][code[i]-'0']++
		}
	}
	const expected = draws / 10.0
	for i := range CodeLength {
		chi2 := 0.0
		for _, c := range counts[i] {
			d := float64(c) - expected
			chi2 += d * d / expected
		}
		if chi2 > 60 {
			t.Errorf("digit %d: chi-square %.1f over 60; counts %v", i, chi2, counts[i])
		}
	}
}

func TestWellFormedCode(t *testing.T) {
	tests := []struct {
		code string
		want bool
	}{
		{"123456", true},
		{"000000", true},
		{"", false},
		{"12345", false},
		{"1234567", false},
		{"12345a", false},
		{" 12345", false},
		{"12 456", false},
		{"-12345", false},
		{"１２３４５６", false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			if got := WellFormedCode(tt.code); got != tt.want {
				t.Fatalf("WellFormedCode(%q) = %v, want %v", tt.code, got, tt.want)
			}
		})
	}
}

func TestRules(t *testing.T) {
	// These values are part of the published auth rules; a change here is a
	// change to the product, not a refactor.
	if CodeTTL != 5*time.Minute || MaxAttempts != 5 || SendCooldown != time.Minute ||
		SendsPerDay != 10 || CodeLength != 6 {
		t.Fatalf("rules changed: ttl %v, attempts %d, cooldown %v, per day %d, length %d",
			CodeTTL, MaxAttempts, SendCooldown, SendsPerDay, CodeLength)
	}
}

var (
	hasherKey = []byte("0123456789abcdef0123456789abcdef")
	otherKey  = []byte("fedcba9876543210fedcba9876543210")
)

func TestNewHasherKeyLength(t *testing.T) {
	for _, key := range [][]byte{nil, []byte("short"), hasherKey[:MinKeyLength-1]} {
		if _, err := NewHasher(key); err == nil {
			t.Errorf("NewHasher with a %d-byte key succeeded", len(key))
		}
	}
	if _, err := NewHasher(hasherKey); err != nil {
		t.Fatalf("NewHasher: %v", err)
	}
}

func TestHasher(t *testing.T) {
	h, err := NewHasher(hasherKey)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewHasher(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	const phone, code = "+447400123456", "123456"
	stored := h.Hash(phone, code)
	if len(stored) != 32 {
		t.Fatalf("MAC is %d bytes", len(stored))
	}
	if !bytes.Equal(stored, h.Hash(phone, code)) {
		t.Fatal("Hash is not deterministic")
	}
	if bytes.Contains(stored, []byte(code)) {
		t.Fatal("MAC contains the code")
	}

	tests := []struct {
		name        string
		h           *Hasher
		phone, code string
		want        bool
	}{
		{"same phone and code", h, phone, code, true},
		{"wrong code", h, phone, "123457", false},
		{"other phone", h, "+447400123457", code, false},
		{"other key", other, phone, code, false},
		{"empty code", h, phone, "", false},
		// Moving a digit from the phone to the code must change the MAC.
		{"field boundary", h, "+44740012345", "6123456", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.Verify(tt.phone, tt.code, stored); got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}

	// The hasher keeps its own copy of the key.
	key := append([]byte(nil), hasherKey...)
	own, err := NewHasher(key)
	if err != nil {
		t.Fatal(err)
	}
	clear(key)
	if !own.Verify(phone, code, stored) {
		t.Fatal("Verify changed after the caller wiped its key buffer")
	}
}

func TestEqual(t *testing.T) {
	h, err := NewHasher(hasherKey)
	if err != nil {
		t.Fatal(err)
	}
	a := h.Hash("+447400123456", "123456")
	b := h.Hash("+447400123456", "654321")
	tests := []struct {
		name string
		x, y []byte
		want bool
	}{
		{"equal", a, append([]byte(nil), a...), true},
		{"different", a, b, false},
		{"truncated", a, a[:31], false},
		{"nil", a, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Equal(tt.x, tt.y); got != tt.want {
				t.Fatalf("Equal = %v, want %v", got, tt.want)
			}
		})
	}
}
