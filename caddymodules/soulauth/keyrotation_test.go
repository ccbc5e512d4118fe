package soulauth_test

import (
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/soultest"
)

// TestKeyRotation rotates SECRET_KEY the way the runbook does, through
// Caddy: sign in under key A; reload with SECRET_KEY=B and
// SECRET_KEY_PREVIOUS=A, where A's access token still works and a refresh
// hands out tokens signed with B; restart with B alone, where A's token
// is refused and B's works.
func TestKeyRotation(t *testing.T) {
	keyA, keyB := soultest.RandomHex(32), soultest.RandomHex(32)
	o := soultest.Options{Database: soultest.Postgres, Redis: true, Env: map[string]string{"SECRET_KEY": keyA}}
	s := soultest.Start(t, o)
	c := newClient(t, s)
	pair := c.signIn(newPhone())
	if !signedWith(pair.AccessToken, keyA) {
		t.Fatal("the access token is not signed with SECRET_KEY")
	}

	t.Setenv("SECRET_KEY", keyB)
	t.Setenv("SECRET_KEY_PREVIOUS", keyA)
	s.Reload(repoCaddyfile(t))
	soultest.WantStatus(t, c.withToken(http.MethodGet, soulauth.PathMe, pair.AccessToken), http.StatusOK)
	resp := c.post(soulauth.PathRefresh, map[string]string{"refresh_token": pair.RefreshToken})
	soultest.WantStatus(t, resp, http.StatusOK)
	var next soulauth.TokenPair
	resp.JSON(t, &next)
	if !signedWith(next.AccessToken, keyB) || signedWith(next.AccessToken, keyA) {
		t.Fatal("after the rotation the refresh did not sign with the new key alone")
	}
	soultest.WantStatus(t, c.withToken(http.MethodGet, soulauth.PathMe, next.AccessToken), http.StatusOK)
	fresh := c.signIn(newPhone())
	if !signedWith(fresh.AccessToken, keyB) {
		t.Fatal("a sign-in after the rotation is not signed with the new key")
	}

	// The rotation is over: the previous key is gone.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	o.DatabaseURL = s.DatabaseURL
	o.Env = map[string]string{"SECRET_KEY": keyB, "SECRET_KEY_PREVIOUS": ""}
	s = soultest.Start(t, o)
	c = &client{t: t, s: s, ip: c.ip}
	resp = c.withToken(http.MethodGet, soulauth.PathMe, pair.AccessToken)
	soultest.WantProblem(t, resp, http.StatusUnauthorized, "invalid_token")
	if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="soul", error="invalid_token"` {
		t.Fatalf("WWW-Authenticate %q", got)
	}
	soultest.WantStatus(t, c.withToken(http.MethodGet, soulauth.PathMe, next.AccessToken), http.StatusOK)
	soultest.WantStatus(t, c.post(soulauth.PathRefresh, map[string]string{"refresh_token": next.RefreshToken}), http.StatusOK)
}

// signedWith reports whether tok is an HS256 JWT whose signature key
// verifies; the claims' times are checked as well.
func signedWith(tok, key string) bool {
	_, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte(key), nil },
		jwt.WithValidMethods([]string{"HS256"}))
	return err == nil
}
