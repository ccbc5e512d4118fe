package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	testKey     = []byte("current-secret-key-0123456789abcdef")
	previousKey = []byte("previous-secret-key-0123456789abcd")
	strangerKey = []byte("someone-elses-key-0123456789abcdef")
	t0          = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// clock is a settable time source for an Issuer.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newTestIssuer(t testing.TB, opts Options) (*Issuer, *clock) {
	t.Helper()
	c := &clock{now: t0}
	if opts.Key == nil {
		opts.Key = testKey
	}
	opts.Now = c.Now
	iss, err := NewIssuer(opts)
	if err != nil {
		t.Fatalf("NewIssuer: %v", err)
	}
	return iss, c
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// forge builds a JWT by hand, HMAC-SHA256 signed with key over the given
// header and payload JSON, whatever the header claims the algorithm is.
func forge(key []byte, header, payload string) string {
	signing := b64(header) + "." + b64(payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

const hs256 = `{"alg":"HS256","typ":"JWT"}`

// payload returns access-token claims JSON around t0, with overrides; a nil
// override removes the claim.
func payload(overrides map[string]any) string {
	claims := map[string]any{
		"sub": "3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
		"jti": "8d0f6a52-4c1e-4b8a-9f3d-2e7c5b1a0d9f",
		"iat": t0.Unix(),
		"exp": t0.Add(15 * time.Minute).Unix(),
		"typ": "access",
	}
	for k, v := range overrides {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	b, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestIssueVerify(t *testing.T) {
	iss, _ := newTestIssuer(t, Options{AccessTTL: 10 * time.Minute})
	tok, claims, err := iss.Issue("user-1")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if claims.UserID != "user-1" || claims.ID == "" {
		t.Fatalf("Issue claims = %+v", claims)
	}
	if !claims.IssuedAt.Equal(t0) || !claims.ExpiresAt.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("Issue times = %v .. %v", claims.IssuedAt, claims.ExpiresAt)
	}
	got, err := iss.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.UserID != claims.UserID || got.ID != claims.ID ||
		!got.IssuedAt.Equal(claims.IssuedAt) || !got.ExpiresAt.Equal(claims.ExpiresAt) {
		t.Fatalf("Verify = %+v, Issue said %+v", got, claims)
	}

	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var header map[string]any
	var body map[string]any
	decodeJSON(t, parts[0], &header)
	decodeJSON(t, parts[1], &body)
	if header["alg"] != "HS256" {
		t.Fatalf("header alg = %v", header["alg"])
	}
	for _, claim := range []string{"sub", "iat", "exp", "jti"} {
		if _, ok := body[claim]; !ok {
			t.Fatalf("payload lacks %q: %v", claim, body)
		}
	}
	if body["typ"] != "access" {
		t.Fatalf("payload typ = %v", body["typ"])
	}

	_, other, err := iss.Issue("user-1")
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == claims.ID {
		t.Fatalf("two tokens share jti %q", claims.ID)
	}
}

func TestIssueTruncatesToSeconds(t *testing.T) {
	iss, c := newTestIssuer(t, Options{})
	c.now = t0.Add(700 * time.Millisecond)
	tok, claims, err := iss.Issue("user-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := iss.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !got.IssuedAt.Equal(claims.IssuedAt) || !got.ExpiresAt.Equal(claims.ExpiresAt) {
		t.Fatalf("Verify = %+v, Issue said %+v", got, claims)
	}
	if iss.AccessTTL() != DefaultAccessTTL {
		t.Fatalf("AccessTTL = %v, want %v", iss.AccessTTL(), DefaultAccessTTL)
	}
}

func TestIssueRejectsEmptyUser(t *testing.T) {
	iss, _ := newTestIssuer(t, Options{})
	if tok, _, err := iss.Issue(""); err == nil {
		t.Fatalf("Issue(\"\") = %q, want an error", tok)
	}
}

func TestNewIssuerOptions(t *testing.T) {
	if _, err := NewIssuer(Options{}); err == nil {
		t.Fatal("NewIssuer without a key succeeded")
	}
	if _, err := NewIssuer(Options{Key: testKey, AccessTTL: -time.Minute}); err == nil {
		t.Fatal("NewIssuer with a negative lifetime succeeded")
	}
	// The issuer keeps its own copy: a caller reusing its buffer cannot
	// change the key underneath it.
	key := append([]byte(nil), testKey...)
	iss, err := NewIssuer(Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := iss.Issue("user-1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range key {
		key[i] = 0
	}
	if _, err := iss.Verify(tok); err != nil {
		t.Fatalf("Verify after the caller wiped its key buffer: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	iss, _ := newTestIssuer(t, Options{})
	issued, _, err := iss.Issue("user-1")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(issued, ".")
	refresh, _ := NewRefreshToken()

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"empty", "", "malformed"},
		{"one segment", "abc", "malformed"},
		{"two segments", parts[0] + "." + parts[1], "malformed"},
		{"four segments", issued + ".x", "malformed"},
		{"not base64", "!!!." + parts[1] + "." + parts[2], "malformed"},
		{"header not JSON", b64("nope") + "." + parts[1] + "." + parts[2], "malformed"},
		{"too long", issued + strings.Repeat("A", maxTokenLength), "too long"},
		{"refresh token", refresh, "refresh token presented as access token"},

		{"alg none, no signature", b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(payload(nil)) + ".", "algorithm not allowed"},
		{"alg none, HMAC signature", forge(testKey, `{"alg":"none","typ":"JWT"}`, payload(nil)), "algorithm not allowed"},
		{"alg NONE", b64(`{"alg":"NONE"}`) + "." + b64(payload(nil)) + ".", "algorithm not allowed"},
		{"alg missing", forge(testKey, `{"typ":"JWT"}`, payload(nil)), "algorithm not allowed"},
		{"alg HS512 with the right key", forge(testKey, `{"alg":"HS512","typ":"JWT"}`, payload(nil)), "algorithm not allowed"},
		{"alg RS256 with an HMAC signature", forge(testKey, `{"alg":"RS256","typ":"JWT"}`, payload(nil)), "algorithm not allowed"},

		{"HS256 with another key", forge(strangerKey, hs256, payload(nil)), "bad signature"},
		{"HS256 with an empty key", forge(nil, hs256, payload(nil)), "bad signature"},
		{"payload changed, signature kept", parts[0] + "." + b64(payload(map[string]any{"sub": "someone-else"})) + "." + parts[2], "bad signature"},
		{"header changed, signature kept", b64(`{"typ":"JWT","alg":"HS256"}`) + "." + parts[1] + "." + parts[2], "bad signature"},
		{"signature removed", parts[0] + "." + parts[1] + ".", "bad signature"},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(forge(testKey, hs256, payload(nil)), ".")[2], "bad signature"},
		{"signature one character longer", issued + "x", "bad signature"},
		{"newline in signature", parts[0] + "." + parts[1] + "." + parts[2][:10] + "\n" + parts[2][10:], "malformed"},
		{"padded signature", issued + "=", "malformed"},

		{"expired", forge(testKey, hs256, payload(map[string]any{"iat": t0.Add(-time.Hour).Unix(), "exp": t0.Add(-10 * time.Second).Unix()})), "expired"},
		{"issued in the future", forge(testKey, hs256, payload(map[string]any{"iat": t0.Add(time.Minute).Unix()})), "issued in the future"},
		{"not valid yet", forge(testKey, hs256, payload(map[string]any{"nbf": t0.Add(time.Minute).Unix()})), "not valid yet"},
		{"exp not a number", forge(testKey, hs256, payload(map[string]any{"exp": "tomorrow"})), "malformed"},
		{"missing exp", forge(testKey, hs256, payload(map[string]any{"exp": nil})), "missing exp"},
		{"missing sub", forge(testKey, hs256, payload(map[string]any{"sub": nil})), "missing sub"},
		{"empty sub", forge(testKey, hs256, payload(map[string]any{"sub": ""})), "missing sub"},
		{"missing jti", forge(testKey, hs256, payload(map[string]any{"jti": nil})), "missing jti"},
		{"missing iat", forge(testKey, hs256, payload(map[string]any{"iat": nil})), "missing iat"},
		{"missing typ", forge(testKey, hs256, payload(map[string]any{"typ": nil})), "not an access token"},
		{"wrong typ", forge(testKey, hs256, payload(map[string]any{"typ": "refresh"})), "not an access token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := iss.Verify(tt.token)
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			if want := "invalid access token: " + tt.reason; err.Error() != want {
				t.Fatalf("error %q, want %q", err, want)
			}
			if got != (Claims{}) {
				t.Fatalf("claims %+v returned with an error", got)
			}
		})
	}
}

// The hand-built tokens above are only meaningful if one built the same way
// with the right key and claims does verify.
func TestForgeControl(t *testing.T) {
	iss, _ := newTestIssuer(t, Options{})
	got, err := iss.Verify(forge(testKey, hs256, payload(nil)))
	if err != nil {
		t.Fatalf("hand-built genuine token: %v", err)
	}
	if got.UserID != "3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b" {
		t.Fatalf("UserID = %q", got.UserID)
	}
}

func TestVerifyExpiryLeeway(t *testing.T) {
	iss, c := newTestIssuer(t, Options{AccessTTL: time.Minute})
	tok, claims, err := iss.Issue("user-1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at time.Time
		ok bool
	}{
		{claims.ExpiresAt.Add(-time.Second), true},
		{claims.ExpiresAt, true},
		{claims.ExpiresAt.Add(Leeway - time.Second), true},
		{claims.ExpiresAt.Add(Leeway), false},
		{claims.ExpiresAt.Add(time.Hour), false},
		// A replica whose clock runs slightly behind the issuer's.
		{claims.IssuedAt.Add(-Leeway + time.Second), true},
		{claims.IssuedAt.Add(-Leeway - time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.at.Sub(claims.IssuedAt).String(), func(t *testing.T) {
			c.now = tt.at
			_, err := iss.Verify(tok)
			if tt.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Verify = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	before, _ := newTestIssuer(t, Options{Key: previousKey})
	after, _ := newTestIssuer(t, Options{Key: testKey, PreviousKey: previousKey})
	afterOnly, _ := newTestIssuer(t, Options{Key: testKey})
	stranger, _ := newTestIssuer(t, Options{Key: strangerKey})

	oldTok, _, err := before.Issue("user-1")
	if err != nil {
		t.Fatal(err)
	}
	newTok, _, err := after.Issue("user-2")
	if err != nil {
		t.Fatal(err)
	}
	unknownTok, _, err := stranger.Issue("user-3")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		verifier *Issuer
		token    string
		user     string
	}{
		{"previous key during rotation", after, oldTok, "user-1"},
		{"current key during rotation", after, newTok, "user-2"},
		{"new tokens use the current key", afterOnly, newTok, "user-2"},
		{"previous key after rotation ends", afterOnly, oldTok, ""},
		{"new tokens are not signed with the previous key", before, newTok, ""},
		{"unknown key during rotation", after, unknownTok, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.verifier.Verify(tt.token)
			if tt.user == "" {
				if !errors.Is(err, ErrInvalid) || !strings.HasSuffix(err.Error(), "bad signature") {
					t.Fatalf("Verify = %+v, %v; want a bad signature", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.UserID != tt.user {
				t.Fatalf("UserID = %q, want %q", got.UserID, tt.user)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	iss, _ := newTestIssuer(f, Options{PreviousKey: previousKey})
	// Fuzzing runs the target in several processes, so the one genuine token
	// is built deterministically rather than by Issue, whose jti is random.
	issued := forge(testKey, hs256, payload(nil))
	if _, err := iss.Verify(issued); err != nil {
		f.Fatalf("genuine token: %v", err)
	}
	refresh := RefreshPrefix + strings.Repeat("A", 43)
	parts := strings.Split(issued, ".")
	for _, s := range []string{
		issued, refresh, "", ".", "..", "a.b.c",
		parts[0] + "." + parts[1] + ".",
		b64(`{"alg":"none"}`) + "." + b64(payload(nil)) + ".",
		forge(strangerKey, hs256, payload(nil)),
		forge(testKey, `{"alg":"HS512"}`, payload(nil)),
		forge(testKey, hs256, `{"sub":1,"exp":"x"}`),
		forge(testKey, hs256, `[]`),
		forge(testKey, hs256, `null`),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := iss.Verify(s)
		if err == nil && s != issued {
			t.Fatalf("Verify accepted a string that was never issued: %+v", got)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q quotes the token", err)
			}
		}
		WellFormedRefreshToken(s)
	})
}

func BenchmarkIssue(b *testing.B) {
	iss, err := NewIssuer(Options{Key: testKey})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := iss.Issue("3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify: a token seen before (cached, the common case: a phone
// sends the same token until it refreshes) and the full check.
func BenchmarkVerify(b *testing.B) {
	iss, err := NewIssuer(Options{Key: testKey, PreviousKey: previousKey})
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := iss.Issue("3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		verify func(string) (Claims, error)
	}{{"cached", iss.Verify}, {"full", iss.verify}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func decodeJSON(t *testing.T, segment string, v any) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(segment)
	if err != nil {
		t.Fatalf("decoding segment: %v", err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decoding segment: %v", err)
	}
}

func TestIssueSession(t *testing.T) {
	iss, _ := newTestIssuer(t, Options{})
	tok, claims, err := iss.IssueSession("user-1", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := iss.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.SessionID != "session-1" || got.ID != claims.ID || got.UserID != claims.UserID {
		t.Fatalf("Verify = %+v, want %+v", got, claims)
	}
	tok, _, err = iss.Issue("user-1")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := iss.Verify(tok); err != nil || got.SessionID != "" {
		t.Fatalf("Verify of a token without sid = %+v, %v", got, err)
	}
}
