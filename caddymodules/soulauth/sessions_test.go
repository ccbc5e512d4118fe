package soulauth_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/soultest"
)

// device is one signed-in phone of a test: its client and tokens.
type device struct {
	c    *client
	pair soulauth.TokenPair
}

// signInDevice signs phone in from a new client with the request headers
// given (name, value pairs).
func signInDevice(t *testing.T, s *soultest.Server, phone string, headers ...string) *device {
	t.Helper()
	c := newClient(t, s)
	code := c.requestCode(phone)
	resp := c.do(http.MethodPost, soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": code}, headers...)
	soultest.WantStatus(t, resp, http.StatusOK)
	d := &device{c: c}
	resp.JSON(t, &d.pair)
	return d
}

func (d *device) call(method, path string) *soultest.Response {
	d.c.t.Helper()
	return d.c.withToken(method, path, d.pair.AccessToken)
}

func (d *device) sessions() []auth.DeviceSession {
	d.c.t.Helper()
	resp := d.call(http.MethodGet, soulauth.PathSessions)
	soultest.WantStatus(d.c.t, resp, http.StatusOK)
	var list soulauth.SessionList
	resp.JSON(d.c.t, &list)
	return list.Sessions
}

// id is the device's own session, as its listing marks it current.
func (d *device) id() uuid.UUID {
	d.c.t.Helper()
	var id uuid.UUID
	for _, s := range d.sessions() {
		if s.Current {
			if id != uuid.Nil {
				d.c.t.Fatal("two sessions are current")
			}
			id = s.ID
		}
	}
	if id == uuid.Nil {
		d.c.t.Fatal("no session is current")
	}
	return id
}

func find(t *testing.T, list []auth.DeviceSession, id uuid.UUID) (auth.DeviceSession, bool) {
	t.Helper()
	for _, s := range list {
		if s.ID == id {
			return s, true
		}
	}
	return auth.DeviceSession{}, false
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func wantEnded(t *testing.T, list []auth.DeviceSession, id uuid.UUID, reason string) {
	t.Helper()
	s, ok := find(t, list, id)
	if !ok {
		t.Fatalf("session %s is not listed", id)
	}
	if !s.Ended || s.EndedAt == nil || str(s.EndedReason) != reason || s.Current {
		t.Fatalf("session %s: ended %v at %v for %s (current %v), want ended for %s", id, s.Ended, s.EndedAt, str(s.EndedReason), s.Current, reason)
	}
}

func TestSessions(t *testing.T) {
	forEachDatabase(t, soultest.Options{Redis: true, Caddyfile: relaxedCaddyfile(t)}, func(t *testing.T, s *soultest.Server) {
		db := s.OpenDB(t)
		phone := newPhone()

		a := signInDevice(t, s, phone, "X-Platform", " iOS ", "X-App-Version", "2.4.1")
		b := signInDevice(t, s, phone, "X-Platform", "bad platform!", "X-App-Version", strings.Repeat("1", 33))
		aID, bID := a.id(), b.id()

		list := a.sessions()
		if len(list) != 2 {
			t.Fatalf("%d sessions, want 2: %+v", len(list), list)
		}
		as, _ := find(t, list, aID)
		bs, _ := find(t, list, bID)
		if !as.Current || str(as.Platform) != "ios" || str(as.AppVersion) != "2.4.1" || as.Ended || as.EndedAt != nil || as.EndedReason != nil {
			t.Errorf("own session %+v", as)
		}
		if bs.Current || bs.Platform != nil || bs.AppVersion != nil || bs.Ended || bs.CreatedAt.IsZero() || bs.LastUsedAt.IsZero() {
			t.Errorf("other session %+v: malformed headers should be dropped", bs)
		}
		if n := soultest.Count(t, db, "sessions", "platform IS NOT NULL AND platform <> 'ios'"); n != 0 {
			t.Errorf("%d sessions store a malformed platform", n)
		}
		if n := soultest.Count(t, db, "sessions", "app_version IS NOT NULL AND app_version <> '2.4.1'"); n != 0 {
			t.Errorf("%d sessions store a malformed app version", n)
		}
		// No token material or address in the answer.
		body := string(a.call(http.MethodGet, soulauth.PathSessions).Body)
		for _, secret := range []string{a.pair.RefreshToken, b.pair.RefreshToken, "token", "hash", "203.0."} {
			if strings.Contains(body, secret) {
				t.Errorf("the sessions answer holds %q: %s", secret, body)
			}
		}

		// A refresh updates what the app said, and the last use.
		before := bs.LastUsedAt
		time.Sleep(2 * time.Millisecond)
		resp := b.c.do(http.MethodPost, soulauth.PathRefresh, map[string]string{"refresh_token": b.pair.RefreshToken},
			"X-Platform", "android", "X-App-Version", "1.0.0-beta.2+417")
		soultest.WantStatus(t, resp, http.StatusOK)
		retired := b.pair.RefreshToken
		resp.JSON(t, &b.pair)
		bs, _ = find(t, a.sessions(), bID)
		if str(bs.Platform) != "android" || str(bs.AppVersion) != "1.0.0-beta.2+417" || !bs.LastUsedAt.After(before) {
			t.Errorf("after a refresh: %+v (last used before %v)", bs, before)
		}
		// A refresh without the headers keeps them.
		resp = b.c.post(soulauth.PathRefresh, map[string]string{"refresh_token": b.pair.RefreshToken})
		soultest.WantStatus(t, resp, http.StatusOK)
		retired = b.pair.RefreshToken
		resp.JSON(t, &b.pair)
		if bs, _ = find(t, a.sessions(), bID); str(bs.Platform) != "android" {
			t.Errorf("a refresh without X-Platform dropped it: %+v", bs)
		}

		// Reuse of the retired token past its grace window ends b's session;
		// a's listing says so.
		exec(t, db, "UPDATE sessions SET rotated_at = ? WHERE id = ?", time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond), bID)
		soultest.WantProblem(t, newClient(t, s).post(soulauth.PathRefresh, map[string]string{"refresh_token": retired}),
			http.StatusUnauthorized, "invalid_refresh_token")
		wantEnded(t, a.sessions(), bID, auth.EndedTokenReuse)
		soultest.WantProblem(t, b.call(http.MethodGet, soulauth.PathSessions), http.StatusUnauthorized, "invalid_token")

		// DELETE of one session ends it at once.
		c := signInDevice(t, s, phone)
		cID := c.id()
		soultest.WantStatus(t, a.call(http.MethodDelete, soulauth.PathSessions+"/"+cID.String()), http.StatusNoContent)
		soultest.WantProblem(t, c.call(http.MethodGet, soulauth.PathMe), http.StatusUnauthorized, "invalid_token")
		soultest.WantProblem(t, c.c.post(soulauth.PathRefresh, map[string]string{"refresh_token": c.pair.RefreshToken}),
			http.StatusUnauthorized, "invalid_refresh_token")
		wantEnded(t, a.sessions(), cID, auth.EndedByUser)
		// Again: still ended, as it was.
		soultest.WantStatus(t, a.call(http.MethodDelete, soulauth.PathSessions+"/"+cID.String()), http.StatusNoContent)

		// Someone else's session, an unknown one and a malformed id are 404.
		other := signInDevice(t, s, newPhone())
		soultest.WantProblem(t, other.call(http.MethodDelete, soulauth.PathSessions+"/"+aID.String()), http.StatusNotFound, "not_found")
		soultest.WantProblem(t, a.call(http.MethodDelete, soulauth.PathSessions+"/"+uuid.NewString()), http.StatusNotFound, "not_found")
		for _, bad := range []string{"nope", "{" + aID.String() + "}", "urn:uuid:" + aID.String(), strings.ReplaceAll(aID.String(), "-", "")} {
			soultest.WantProblem(t, a.call(http.MethodDelete, soulauth.PathSessions+"/"+bad), http.StatusNotFound, "not_found")
		}
		soultest.WantProblem(t, a.call(http.MethodDelete, soulauth.PathSessions+"/"+aID.String()+"/x"), http.StatusNotFound, "not_found")
		resp = a.call(http.MethodGet, soulauth.PathSessions+"/"+aID.String())
		soultest.WantProblem(t, resp, http.StatusMethodNotAllowed, "method_not_allowed")
		if got := resp.Header.Get("Allow"); got != http.MethodDelete {
			t.Errorf("Allow %q", got)
		}
		if _, ok := find(t, other.sessions(), aID); ok {
			t.Error("another user's listing shows a's session")
		}
		soultest.WantStatus(t, a.call(http.MethodGet, soulauth.PathMe), http.StatusOK)

		// scope=others ends every other session, and only that scope is known.
		d := signInDevice(t, s, phone)
		e := signInDevice(t, s, phone)
		dID, eID := d.id(), e.id()
		for _, q := range []string{"", "?scope=all", "?scope=", "?scope=others&scope=others", "?scope=OTHERS"} {
			soultest.WantProblem(t, a.call(http.MethodDelete, soulauth.PathSessions+q), http.StatusUnprocessableEntity, "validation_failed")
		}
		soultest.WantStatus(t, d.call(http.MethodGet, soulauth.PathMe), http.StatusOK)
		soultest.WantStatus(t, a.call(http.MethodDelete, soulauth.PathSessions+"?scope=others"), http.StatusNoContent)
		soultest.WantProblem(t, d.call(http.MethodGet, soulauth.PathMe), http.StatusUnauthorized, "invalid_token")
		soultest.WantProblem(t, e.call(http.MethodGet, soulauth.PathMe), http.StatusUnauthorized, "invalid_token")
		soultest.WantStatus(t, a.call(http.MethodGet, soulauth.PathMe), http.StatusOK)
		soultest.WantStatus(t, other.call(http.MethodGet, soulauth.PathMe), http.StatusOK)
		list = a.sessions()
		wantEnded(t, list, dID, auth.EndedByUser)
		wantEnded(t, list, eID, auth.EndedByUser)
		wantEnded(t, list, bID, auth.EndedTokenReuse)
		if as, _ := find(t, list, aID); as.Ended || !as.Current {
			t.Errorf("own session after scope=others: %+v", as)
		}

		// Logout is signed_out.
		f := signInDevice(t, s, phone)
		fID := f.id()
		soultest.WantStatus(t, f.c.post(soulauth.PathLogout, map[string]string{"refresh_token": f.pair.RefreshToken}), http.StatusNoContent)
		wantEnded(t, a.sessions(), fID, auth.EndedSignedOut)

		// Ended sessions are listed for a week, then no more (and the
		// retention sweep may delete them).
		exec(t, db, "UPDATE sessions SET revoked_at = ? WHERE id = ?", time.Now().UTC().Add(-auth.EndedKept-time.Minute).Truncate(time.Microsecond), cID)
		list = a.sessions()
		if _, ok := find(t, list, cID); ok {
			t.Error("a session ended over a week ago is still listed")
		}
		if len(list) != 5 {
			t.Errorf("%d sessions listed, want 5", len(list))
		}

		// Without a token: 401.
		soultest.WantProblem(t, s.Do(http.MethodGet, soulauth.PathSessions, nil), http.StatusUnauthorized, "unauthorized")
		soultest.WantProblem(t, s.Do(http.MethodDelete, soulauth.PathSessions+"/"+aID.String(), nil), http.StatusUnauthorized, "unauthorized")
		resp = a.call(http.MethodPost, soulauth.PathSessions)
		soultest.WantProblem(t, resp, http.StatusMethodNotAllowed, "method_not_allowed")

		// Deleting the account takes every session, ended ones too.
		soultest.WantStatus(t, a.call(http.MethodDelete, soulauth.PathMe), http.StatusNoContent)
		if n := soultest.Count(t, db, "sessions", "user_id = ?", a.pair.User.ID); n != 0 {
			t.Errorf("%d sessions left after the account's deletion", n)
		}
	})
}
