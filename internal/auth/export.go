package auth

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// SessionInfo is what an account's owner may see of a session: when it
// began, was last used and ends. No token material (hashes, sealed
// tokens) ever leaves the database.
type SessionInfo struct {
	ID         uuid.UUID `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// ActiveSessions returns the open sessions of userID (not revoked, not
// expired), oldest first.
func (s *Service) ActiveSessions(ctx context.Context, userID uuid.UUID) ([]SessionInfo, error) {
	var rows []Session
	err := s.db.NewSelect().Model(&rows).
		Column("id", "created_at", "last_used_at", "expires_at").
		Where("user_id = ?", userID).
		Where("revoked_at IS NULL").
		Where("expires_at > ?", dbTime(s.now())).
		OrderExpr("created_at, id").
		Scan(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]SessionInfo, len(rows))
	for i, r := range rows {
		out[i] = SessionInfo{ID: r.ID, CreatedAt: r.CreatedAt.UTC(), LastUsedAt: r.LastUsedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC()}
	}
	return out, nil
}
