package auth

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/soulapp/soul/internal/limiter"
)

// Session markers: whether a session is still open, cached in Redis beside
// the rate limits (limiter.Marker), so that the request of an access token
// learns it in the round trip of its rate limit rather than by a query.
//
// The database stays the source of truth; a marker is only a copy of it:
//   - A revocation (logout, refresh-token reuse, ending a session, deleting
//     the account) writes "revoked" after its transaction commits,
//     overwriting "live". A request that read the database before the
//     commit can only fill an absent marker (SET NX), so it can never put
//     "live" back over the revocation.
//   - An absent marker (never filled, expired, or Redis restarted empty) or
//     an unknown one (Redis down or not configured) sends the request to
//     the database, which then fills the marker when Redis answered.
//   - "live" is kept at most SessionMarkerTTL and never past the session's
//     own expiry; "revoked" as long as an access token lives.
//
// The one gap: a revocation on a replica that cannot reach Redis while the
// others can. Its marker's key is deleted as soon as that replica reaches
// Redis again (before it reads it itself); until then the other replicas
// may accept the session's access tokens for at most SessionMarkerTTL.
const SessionMarkerTTL = time.Minute

// sessionMarker names the marker of session id.
func sessionMarker(id string) string { return "session:" + id }

// SessionMarker is the name of session id's marker, for the rate limiter
// to read it along with a per-user limit (limiter.AllowMarked).
func SessionMarker(id string) string { return sessionMarker(id) }

type markerKey struct{}

type markerRead struct {
	session string
	state   limiter.Marker
}

// WithSessionMarker returns a copy of ctx remembering the state of session's
// marker, as the rate limiter read it moments ago.
func WithSessionMarker(ctx context.Context, session string, state limiter.Marker) context.Context {
	return context.WithValue(ctx, markerKey{}, markerRead{session: session, state: state})
}

func sessionMarkerIn(ctx context.Context, session string) (limiter.Marker, bool) {
	v, ok := ctx.Value(markerKey{}).(markerRead)
	if !ok || v.session != session {
		return limiter.MarkerUnknown, false
	}
	return v.state, true
}

// markRevoked writes "revoked" on the markers of ids, for as long as an
// access token of theirs may live (plus a minute of clock skew).
func markRevoked(ctx context.Context, lim *limiter.Limiter, accessTTL time.Duration, ids ...uuid.UUID) {
	if lim == nil {
		return
	}
	for _, id := range ids {
		lim.SetMarker(ctx, sessionMarker(id.String()), limiter.MarkerRevoked, accessTTL+time.Minute, false)
	}
}
