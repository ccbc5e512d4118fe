package soulmoods_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/api"
	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/contract"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/internal/soultest"
)

// Limits out of the way: these tests count moods, not requests.
var testEnv = map[string]string{
	"RATE_LIMIT_DEFAULT_LIMIT": "1000000",
	"RATE_LIMIT_SHIELD_EVENTS": "1000000",
}

// start runs the server on db with every exchange checked against the
// OpenAPI document.
func start(t testing.TB, db soultest.Database) *soultest.Server {
	t.Helper()
	s := soultest.Start(t, soultest.Options{Database: db, Env: testEnv})
	checker, err := contract.New(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	s.Client.Transport = checker.Transport(t, nil)
	return s
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
	wantStatus(t, resp, http.StatusOK)
	var sent soulauth.OTPSent
	resp.JSON(t, &sent)
	resp = s.Do(http.MethodPost, soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": sent.PreviewCode}, "X-Forwarded-For", u.ip)
	wantStatus(t, resp, http.StatusOK)
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
	wantStatus(u.t, resp, http.StatusCreated)
	var m mood.Mood
	resp.JSON(u.t, &m)
	if loc := resp.Header.Get("Location"); loc != "/api/moods/"+m.ID.String() {
		u.t.Fatalf("Location %q for mood %s", loc, m.ID)
	}
	return m
}

func wantStatus(t testing.TB, resp *soultest.Response, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, resp.Body)
	}
}

func wantProblem(t testing.TB, resp *soultest.Response, status int, code string) {
	t.Helper()
	wantStatus(t, resp, status)
	if p := resp.Problem(t); p.Code != code {
		t.Fatalf("%s %s: code %q, want %q; body %s", resp.Request.Method, resp.Request.URL, p.Code, code, resp.Body)
	}
}

// openDB opens the server's database beside it, to arrange rows.
func openDB(t testing.TB, s *soultest.Server) *bun.DB {
	t.Helper()
	db, _, err := database.Open(context.Background(), database.Config{URL: s.DatabaseURL, SQLitePath: s.SQLitePath}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func count(t testing.TB, db *bun.DB, table, where string, args ...any) int {
	t.Helper()
	n, err := db.NewSelect().TableExpr(table).Where(where, args...).Count(context.Background())
	if err != nil {
		t.Fatalf("counting %s: %v", table, err)
	}
	return int(n)
}
