package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/device"
)

// Why a session ended, kept with it (sessions.ended_reason) while it is
// listed as ended.
const (
	// EndedTokenReuse: a retired refresh token was presented after its
	// grace window, so one of its two holders is not the user.
	EndedTokenReuse = "token_reuse"
	// EndedSignedOut: the device logged out.
	EndedSignedOut = "signed_out"
	// EndedByUser: the user ended it from another device (or this one)
	// through the sessions routes.
	EndedByUser = "ended_by_user"
)

// EndedKept is how long an ended session stays listed, so the user's other
// devices learn that it ended and why; the retention sweep deletes it
// after that.
const EndedKept = 7 * 24 * time.Hour

type deviceKey struct{}

// WithDevice returns ctx carrying what the app said about its device, for
// VerifyCode to record on the session it opens and Refresh to update.
func WithDevice(ctx context.Context, d device.Info) context.Context {
	return context.WithValue(ctx, deviceKey{}, d)
}

func deviceOf(ctx context.Context) device.Info {
	d, _ := ctx.Value(deviceKey{}).(device.Info)
	return d
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// DeviceSession is what its owner sees of a session in the list of their
// signed-in devices: no token material, no address.
type DeviceSession struct {
	ID         uuid.UUID `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	Platform   *string   `json:"platform"`
	AppVersion *string   `json:"app_version"`
	// Current is the session of the request's access token.
	Current bool `json:"current"`
	// Ended, EndedAt and EndedReason tell an ended session, listed for
	// EndedKept after it ended.
	Ended       bool       `json:"ended"`
	EndedAt     *time.Time `json:"ended_at"`
	EndedReason *string    `json:"ended_reason"`
}

// Sessions lists the open sessions of userID and those that ended within
// EndedKept, oldest first; current is marked Current.
func (s *Service) Sessions(ctx context.Context, userID, current uuid.UUID) ([]DeviceSession, error) {
	rows, err := listedSessions(ctx, s.db, userID, s.now())
	if err != nil {
		return nil, err
	}
	out := make([]DeviceSession, len(rows))
	for i, r := range rows {
		out[i] = DeviceSession{
			ID: r.ID, CreatedAt: r.CreatedAt.UTC(), LastUsedAt: r.LastUsedAt.UTC(),
			Platform: r.Platform, AppVersion: r.AppVersion,
			Current: r.ID == current,
		}
		if r.RevokedAt != nil {
			at := r.RevokedAt.UTC()
			out[i].Ended, out[i].EndedAt, out[i].EndedReason = true, &at, r.EndedReason
		}
	}
	return out, nil
}

// listedSessions reads the sessions a user is shown: open (not revoked,
// not expired) or ended with a reason within EndedKept.
func listedSessions(ctx context.Context, db bun.IDB, userID uuid.UUID, now time.Time) ([]Session, error) {
	now = dbTime(now)
	var rows []Session
	err := db.NewSelect().Model(&rows).
		Column("id", "created_at", "last_used_at", "expires_at", "revoked_at", "platform", "app_version", "ended_reason").
		Where("user_id = ?", userID).
		WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.
				WhereGroup(" OR ", func(q *bun.SelectQuery) *bun.SelectQuery {
					return q.Where("revoked_at IS NULL").Where("expires_at > ?", now)
				}).
				WhereGroup(" OR ", func(q *bun.SelectQuery) *bun.SelectQuery {
					return q.Where("revoked_at > ?", now.Add(-EndedKept)).Where("ended_reason IS NOT NULL")
				})
		}).
		OrderExpr("created_at, id").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: reading the sessions: %w", err)
	}
	return rows, nil
}

// EndSession ends session id of userID at once: its refresh token and its
// access tokens stop working (the Authenticator checks the session on
// every request). A session of userID that had already ended is left as it
// is. It reports ErrNotFound when userID has no such session.
func (s *Service) EndSession(ctx context.Context, userID, id uuid.UUID) error {
	now := dbTime(s.now())
	res, err := s.db.NewUpdate().Model((*Session)(nil)).
		Set("revoked_at = ?", now).
		Set("ended_reason = ?", EndedByUser).
		Set("grace_token = NULL").
		Where("id = ?", id).
		Where("user_id = ?", userID).
		Where("revoked_at IS NULL").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("auth: ending session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		markRevoked(ctx, s.limiter, s.issuer.AccessTTL(), id)
		return nil
	}
	n, err := s.db.NewSelect().Model((*Session)(nil)).Where("id = ?", id).Where("user_id = ?", userID).Count(ctx)
	if err != nil {
		return fmt.Errorf("auth: reading session: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// EndOtherSessions ends every open session of userID but keep, and
// returns how many it ended.
func (s *Service) EndOtherSessions(ctx context.Context, userID, keep uuid.UUID) (int, error) {
	now := dbTime(s.now())
	var ids []uuid.UUID
	_, err := s.db.NewUpdate().Model((*Session)(nil)).
		Set("revoked_at = ?", now).
		Set("ended_reason = ?", EndedByUser).
		Set("grace_token = NULL").
		Where("user_id = ?", userID).
		Where("id <> ?", keep).
		Where("revoked_at IS NULL").
		Returning("id").
		Exec(ctx, &ids)
	if err != nil {
		return 0, fmt.Errorf("auth: ending sessions: %w", err)
	}
	markRevoked(ctx, s.limiter, s.issuer.AccessTTL(), ids...)
	return len(ids), nil
}
