package token

import (
	"context"
	"testing"
)

func TestVerifiedIn(t *testing.T) {
	c := Claims{UserID: "u1", SessionID: "s1"}
	ctx := WithVerified(context.Background(), "tok-a", c)
	tests := []struct {
		name string
		ctx  context.Context
		raw  string
		ok   bool
	}{
		{"the same token", ctx, "tok-a", true},
		{"another token", ctx, "tok-b", false},
		{"a prefix of it", ctx, "tok-", false},
		{"empty", ctx, "", false},
		{"nothing stored", context.Background(), "tok-a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := VerifiedIn(tt.ctx, tt.raw)
			if ok != tt.ok {
				t.Fatalf("VerifiedIn(%q) ok = %v, want %v", tt.raw, ok, tt.ok)
			}
			if ok && got != c {
				t.Errorf("claims = %+v, want %+v", got, c)
			}
			if !ok && got != (Claims{}) {
				t.Errorf("claims = %+v, want zero", got)
			}
		})
	}
}
