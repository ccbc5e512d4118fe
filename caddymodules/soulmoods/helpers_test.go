package soulmoods_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/soultest"
)

// Limits out of the way: these tests count moods, not requests.
var testEnv = map[string]string{
	"RATE_LIMIT_DEFAULT_LIMIT": "1000000",
	"RATE_LIMIT_SHIELD_EVENTS": "1000000",
}

// start runs the server on db; soultest checks every exchange against the
// OpenAPI document.
func start(t testing.TB, db soultest.Database) *soultest.Server {
	t.Helper()
	return soultest.Start(t, soultest.Options{Database: db, Env: testEnv})
}

// forEachDatabase runs fn on SQLite and on Postgres; never in parallel,
// since Caddy keeps one config per process.
func forEachDatabase(t *testing.T, fn func(t *testing.T, s *soultest.Server)) {
	for _, db := range soultest.Databases {
		t.Run(string(db), func(t *testing.T) { fn(t, start(t, db)) })
	}
}

var seq atomic.Int32

// user is a signed-in account.
type user struct {
	t     testing.TB
	s     *soultest.Server
	ip    string
	id    uuid.UUID
	token string
}

// signIn creates an account through the API with the local code
// provider's preview code.
func signIn(t testing.TB, s *soultest.Server) *user {
	t.Helper()
	n := seq.Add(1)
	u := &user{t: t, s: s, ip: fmt.Sprintf("198.51.%d.%d", n/250, n%250+1)}
	phone := fmt.Sprintf("+4474002%05d", n)
	resp := s.Do(http.MethodPost, soulauth.PathOTPRequest, map[string]string{"phone": phone}, "X-Forwarded-For", u.ip)
	soultest.WantStatus(t, resp, http.StatusOK)
	var sent soulauth.OTPSent
	resp.JSON(t, &sent)
	resp = s.Do(http.MethodPost, soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": sent.PreviewCode}, "X-Forwarded-For", u.ip)
	soultest.WantStatus(t, resp, http.StatusOK)
	var pair soulauth.TokenPair
	resp.JSON(t, &pair)
	u.id, u.token = pair.User.ID, pair.AccessToken
	return u
}

func (u *user) do(method, path string, body any, headers ...string) *soultest.Response {
	u.t.Helper()
	return u.s.Do(method, path, body, append([]string{"Authorization", "Bearer " + u.token, "X-Forwarded-For", u.ip}, headers...)...)
}

// create posts a mood and returns it, failing unless the answer is 201.
func (u *user) create(body any, headers ...string) mood.Mood {
	u.t.Helper()
	resp := u.do(http.MethodPost, "/api/moods", body, headers...)
	soultest.WantStatus(u.t, resp, http.StatusCreated)
	var m mood.Mood
	resp.JSON(u.t, &m)
	if loc := resp.Header.Get("Location"); loc != "/api/moods/"+m.ID.String() {
		u.t.Fatalf("Location %q for mood %s", loc, m.ID)
	}
	return m
}
