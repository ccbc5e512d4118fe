// Package token mints and checks the credentials a signed-in phone holds:
// short-lived access tokens (JWT, HS256) and long-lived refresh tokens
// (opaque random strings that the server stores only as a hash).
package token

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// ErrInvalid is returned, wrapped with a short reason, for every access token
// that must not be honoured. The reason never contains the token itself.
var ErrInvalid = errors.New("invalid access token")

const (
	// DefaultAccessTTL is used when Options.AccessTTL is zero.
	DefaultAccessTTL = 15 * time.Minute

	// Leeway absorbs clock skew between replicas when checking exp and iat.
	Leeway = 5 * time.Second

	// accessType marks access tokens in the "typ" claim, so that a JWT minted
	// for another purpose with the same key can never pass as one.
	accessType = "access"

	// maxTokenLength is far above any token Issue produces; longer input is
	// refused before any decoding work is spent on it.
	maxTokenLength = 2048
)

// Options configures an Issuer.
type Options struct {
	// Key signs new tokens and verifies them (SECRET_KEY).
	Key []byte
	// PreviousKey, when set, is still accepted for verification so that
	// tokens issued before a key rotation stay valid until they expire
	// (SECRET_KEY_PREVIOUS).
	PreviousKey []byte
	// AccessTTL is the lifetime of an access token; zero means
	// DefaultAccessTTL.
	AccessTTL time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Claims is what an access token says about its bearer.
type Claims struct {
	UserID    string    // "sub"
	ID        string    // "jti", unique per token
	IssuedAt  time.Time // "iat"
	ExpiresAt time.Time // "exp"
	// SessionID is the sign-in session the token was minted for ("sid"),
	// so a verifier can refuse tokens of a revoked session before they
	// expire. Empty for tokens issued without one.
	SessionID string
}

// Issuer issues and verifies access tokens. It is safe for concurrent use.
type Issuer struct {
	key    []byte
	keys   jwt.VerificationKeySet
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
	cache  *verifiedTokens
}

// NewIssuer returns an Issuer for opts. Key strength rules (such as the
// production minimum length for SECRET_KEY) belong to configuration; here an
// empty key is the only one refused.
func NewIssuer(opts Options) (*Issuer, error) {
	if len(opts.Key) == 0 {
		return nil, errors.New("token: signing key is empty")
	}
	if opts.AccessTTL < 0 {
		return nil, errors.New("token: access token lifetime is negative")
	}
	iss := &Issuer{
		key:   clone(opts.Key),
		ttl:   opts.AccessTTL,
		now:   opts.Now,
		cache: newVerifiedTokens(MaxCachedTokens),
	}
	if iss.ttl == 0 {
		iss.ttl = DefaultAccessTTL
	}
	if iss.now == nil {
		iss.now = time.Now
	}
	iss.keys.Keys = []jwt.VerificationKey{iss.key}
	if len(opts.PreviousKey) > 0 {
		iss.keys.Keys = append(iss.keys.Keys, clone(opts.PreviousKey))
	}
	iss.parser = jwt.NewParser(
		// Pinning the algorithm is what stops "alg":"none" and key-confusion
		// forgeries; the header is attacker-controlled.
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(iss.now),
		// Strict decoding makes each signature have exactly one encoding.
		jwt.WithStrictDecoding(),
	)
	return iss, nil
}

// AccessTTL is the lifetime of the tokens this Issuer mints, for the
// "expires_in" field of auth responses.
func (iss *Issuer) AccessTTL() time.Duration { return iss.ttl }

// accessClaims is the JSON payload of an access token.
type accessClaims struct {
	jwt.RegisteredClaims
	Type      string `json:"typ"`
	SessionID string `json:"sid,omitempty"`
}

// Issue mints an access token for userID.
func (iss *Issuer) Issue(userID string) (string, Claims, error) {
	return iss.IssueSession(userID, "")
}

// IssueSession mints an access token for userID that names the session
// it belongs to in the "sid" claim.
func (iss *Issuer) IssueSession(userID, sessionID string) (string, Claims, error) {
	if userID == "" {
		return "", Claims{}, errors.New("token: empty user id")
	}
	// JWT times have one-second precision; truncating here makes the returned
	// Claims equal to what Verify will later read back.
	now := iss.now().Truncate(time.Second)
	c := Claims{
		UserID:    userID,
		ID:        uuid.NewString(),
		IssuedAt:  now,
		ExpiresAt: now.Add(iss.ttl),
		SessionID: sessionID,
	}
	payload := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.UserID,
			ID:        c.ID,
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		},
		Type:      accessType,
		SessionID: sessionID,
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, payload).SignedString(iss.key)
	if err != nil {
		return "", Claims{}, fmt.Errorf("token: signing: %w", err)
	}
	return signed, c, nil
}

// Verify checks an access token's algorithm, signature (current key, then
// the previous one), expiry and claims, and returns its claims. A token
// that verified before and is still within its times is answered from
// memory (see verifiedTokens).
func (iss *Issuer) Verify(token string) (Claims, error) {
	if len(token) > maxTokenLength {
		return Claims{}, invalid("too long")
	}
	now := iss.now()
	if c, ok := iss.cache.get(token, now); ok {
		return c, nil
	}
	c, err := iss.verify(token)
	if err != nil {
		return Claims{}, err
	}
	iss.cache.put(token, c, now)
	return c, nil
}

// verify is Verify without the cache: the full check.
func (iss *Issuer) verify(token string) (Claims, error) {
	if strings.HasPrefix(token, RefreshPrefix) {
		return Claims{}, invalid("refresh token presented as access token")
	}
	// Go's base64 decoder skips CR and LF even in strict mode; refusing any
	// byte outside the base64url alphabet keeps the issued string the only
	// one that verifies.
	for i := 0; i < len(token); i++ {
		if !isTokenByte(token[i]) {
			return Claims{}, invalid("malformed")
		}
	}

	var payload accessClaims
	parsed, err := iss.parser.ParseWithClaims(token, &payload, iss.keyFor)
	if err != nil {
		return Claims{}, invalid(reason(parsed, err))
	}

	switch {
	case payload.Subject == "":
		return Claims{}, invalid("missing sub")
	case payload.ID == "":
		return Claims{}, invalid("missing jti")
	case payload.IssuedAt == nil:
		return Claims{}, invalid("missing iat")
	case payload.Type != accessType:
		return Claims{}, invalid("not an access token")
	}
	return Claims{
		UserID:    payload.Subject,
		ID:        payload.ID,
		IssuedAt:  payload.IssuedAt.Time,
		ExpiresAt: payload.ExpiresAt.Time,
		SessionID: payload.SessionID,
	}, nil
}

func (iss *Issuer) keyFor(*jwt.Token) (any, error) { return iss.keys, nil }

// reason maps the JWT library's errors to fixed phrases: its own messages can
// quote decoded bytes of the token.
func reason(parsed *jwt.Token, err error) string {
	if parsed != nil && parsed.Method != nil && parsed.Method.Alg() != jwt.SigningMethodHS256.Alg() {
		return "algorithm not allowed"
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "algorithm not allowed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing exp"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "issued in the future"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	default:
		return "rejected"
	}
}

func invalid(why string) error { return fmt.Errorf("%w: %s", ErrInvalid, why) }

func isTokenByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.'
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
