package auth

import (
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// User is an account: one per E.164 phone number.
type User struct {
	bun.BaseModel `bun:"table:users"`

	ID        uuid.UUID `bun:"id,pk,type:uuid" json:"id"`
	Phone     string    `bun:"phone,notnull" json:"phone"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
}

// Session is one signed-in device: the hash of its current refresh token,
// the hash of the one it replaced, and the sealed current token for the
// grace window after a rotation; the platform and app version the app
// named; and, once revoked, why (an EndedReason).
type Session struct {
	bun.BaseModel `bun:"table:sessions"`

	ID         uuid.UUID  `bun:"id,pk,type:uuid"`
	UserID     uuid.UUID  `bun:"user_id,notnull,type:uuid"`
	TokenHash  []byte     `bun:"token_hash,notnull"`
	ParentHash []byte     `bun:"parent_hash"`
	RotatedAt  *time.Time `bun:"rotated_at"`
	CreatedAt  time.Time  `bun:"created_at,notnull"`
	LastUsedAt time.Time  `bun:"last_used_at,notnull"`
	ExpiresAt  time.Time  `bun:"expires_at,notnull"`
	RevokedAt  *time.Time `bun:"revoked_at"`
	GraceToken []byte     `bun:"grace_token"`
	Platform   *string    `bun:"platform"`
	AppVersion *string    `bun:"app_version"`
	// EndedReason is set with RevokedAt.
	EndedReason *string `bun:"ended_reason"`
}

// live reports whether the session may still be used at now.
func (s *Session) live(now time.Time) bool {
	return s.RevokedAt == nil && now.Before(s.ExpiresAt)
}

// Challenge is the live one-time code of a phone under the local provider;
// only the code's HMAC is kept.
type Challenge struct {
	bun.BaseModel `bun:"table:otp_challenges"`

	Phone     string    `bun:"phone,pk"`
	CodeHash  []byte    `bun:"code_hash,notnull"`
	Attempts  int       `bun:"attempts,notnull"`
	ExpiresAt time.Time `bun:"expires_at,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// dbTime is the form every stored time takes: UTC, to the microsecond both
// databases keep, so what is written reads back equal.
func dbTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}
