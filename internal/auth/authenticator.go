package auth

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/httpapi"
	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/problem"
	"github.com/soulapp/soul/internal/token"
)

// Realm is the protection space named in WWW-Authenticate.
const Realm = "soul"

// Authenticator checks the bearer access token of a request (RFC 6750).
// The `soul` app builds one per config and every handler that needs a
// signed-in user shares it (app.Authenticator()).
type Authenticator struct {
	issuer *token.Issuer
	db     *bun.DB
	lim    *limiter.Limiter
	now    func() time.Time
}

// NewAuthenticator checks tokens of issuer against the sessions in db,
// through their markers in lim's Redis (see SessionMarkerTTL) when lim
// has one; lim may be nil.
func NewAuthenticator(issuer *token.Issuer, db *bun.DB, lim *limiter.Limiter) *Authenticator {
	return &Authenticator{issuer: issuer, db: db, lim: lim, now: time.Now}
}

// Authenticate returns the user id of a request's valid access token. Its
// error is a caddyhttp.HandlerError carrying a *problem.Error, for a
// handler to return as is: 401 with
// WWW-Authenticate (no credentials: the realm only; a bad, expired, revoked
// or deleted user's token: error="invalid_token"), 503 when the database is
// down so the session cannot be checked, or 500 when the check fails otherwise.
//
// Every call checks the token's session, so that logout and account
// deletion take effect at once rather than when the access token expires:
// by its marker in Redis (read by the rate limit before this handler, or
// one GET), else by one primary-key lookup.
func (a *Authenticator) Authenticate(r *http.Request) (uuid.UUID, error) {
	userID, _, err := a.AuthenticateSession(r)
	return userID, err
}

// AuthenticateSession is Authenticate that also returns the id of the
// token's session, for the routes that tell the caller's own session
// apart.
func (a *Authenticator) AuthenticateSession(r *http.Request) (userID, sessionID uuid.UUID, err error) {
	raw, ok := httpapi.Bearer(r)
	if !ok {
		e := problem.New(http.StatusUnauthorized, "unauthorized", "This resource needs an access token.")
		e.Header = http.Header{"Www-Authenticate": {`Bearer realm="` + Realm + `"`}}
		return uuid.Nil, uuid.Nil, httpapi.Problem(e)
	}
	// A rate limit before this handler may have verified the token already
	// (moments ago: its expiry is checked again all the same).
	claims, ok := token.VerifiedIn(r.Context(), raw)
	if ok && !a.now().Before(claims.ExpiresAt) {
		ok = false
	}
	if !ok {
		if claims, err = a.issuer.Verify(raw); err != nil {
			return uuid.Nil, uuid.Nil, invalidToken()
		}
	}
	userID, err1 := uuid.Parse(claims.UserID)
	sessionID, err2 := uuid.Parse(claims.SessionID)
	if err1 != nil || err2 != nil {
		return uuid.Nil, uuid.Nil, invalidToken()
	}
	live, err := a.sessionLive(r.Context(), claims.SessionID, userID, sessionID)
	if err != nil && !database.Unavailable(err) {
		return uuid.Nil, uuid.Nil, httpapi.Internal(err)
	}
	if err != nil {
		return uuid.Nil, uuid.Nil, httpapi.Unavailable(err)
	}
	if !live {
		return uuid.Nil, uuid.Nil, invalidToken()
	}
	return userID, sessionID, nil
}

// sessionLive answers from the session's marker when it says live or
// revoked, else from the database, filling the marker when Redis answered.
func (a *Authenticator) sessionLive(ctx context.Context, session string, userID, sessionID uuid.UUID) (bool, error) {
	state, ok := sessionMarkerIn(ctx, session)
	if !ok && a.lim != nil {
		state = a.lim.Marker(ctx, sessionMarker(session))
	}
	switch state {
	case limiter.MarkerLive:
		return true, nil
	case limiter.MarkerRevoked:
		return false, nil
	}
	now := a.now()
	live, expires, err := sessionState(ctx, a.db, userID, sessionID, now)
	if err != nil || state != limiter.MarkerAbsent {
		return live, err
	}
	if live {
		a.lim.SetMarker(ctx, sessionMarker(session), limiter.MarkerLive, min(SessionMarkerTTL, expires.Sub(now)), true)
	} else {
		a.lim.SetMarker(ctx, sessionMarker(session), limiter.MarkerRevoked, a.issuer.AccessTTL()+time.Minute, true)
	}
	return live, nil
}

func invalidToken() error {
	e := problem.New(http.StatusUnauthorized, "invalid_token", "The access token is invalid or has expired.")
	e.Header = http.Header{"Www-Authenticate": {`Bearer realm="` + Realm + `", error="invalid_token"`}}
	return httpapi.Problem(e)
}
