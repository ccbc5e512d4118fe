package soulauth_test

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/internal/token"
	"github.com/soulapp/soul/soultest"
)

// badInput is one request a sign-in route must refuse (or, for logout,
// shrug off) without writing anything.
type badInput struct {
	name, body, contentType string
	status                  int
	code                    string // "" for an answer with no body (logout's 204)
	// limited names the rule, keyed on the client IP, that may count this
	// request: the per-IP guard against guessing refresh tokens, or the
	// default policy in front of logout. Nothing else may change.
	limited string
}

// badInputs are the refusals every sign-in route shares, built around one
// well-formed set of fields (fields, without braces) and its first field.
func badInputs(fields, first string) []badInput {
	return []badInput{
		{"form body", "x=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type", ""},
		{"text body", "{" + fields + "}", "text/plain", 415, "unsupported_media_type", ""},
		{"no content type", "{" + fields + "}", "", 415, "unsupported_media_type", ""},
		{"unparseable", `{"` + first + `":`, "application/json", 400, "invalid_json", ""},
		{"unknown field", "{" + fields + `,"x":1}`, "application/json", 400, "invalid_json", ""},
		{"trailing data", "{" + fields + "} {}", "application/json", 400, "invalid_json", ""},
		{"array", `[]`, "application/json", 400, "invalid_json", ""},
		{"empty", ``, "application/json", 400, "invalid_json", ""},
		{"too large", `{"` + first + `":"` + strings.Repeat("1", 70<<10) + `"}`, "application/json", 413, "payload_too_large", ""},
		{"missing field", `{}`, "application/json", 422, "validation_failed", ""},
	}
}

// TestBadInputWritesNothing sends each kind of bad input to each sign-in
// route and checks the exact status and problem code of the answer, and
// that no table gained, lost or changed a row and Redis holds exactly what
// it held before, bar the one per-IP entry that limits the route itself.
func TestBadInputWritesNothing(t *testing.T) {
	const phone = `"phone":"+447400123456"`
	// Well-formed (rt_ and 43 characters) and unknown.
	unknownToken, _ := token.NewRefreshToken()
	routes := []struct {
		path  string
		cases []badInput
	}{
		{soulauth.PathOTPRequest, append(badInputs(phone, "phone"),
			badInput{"wrong type", `{"phone":447400123456}`, "application/json", 400, "invalid_json", ""},
			badInput{"invalid phone", `{"phone":"12"}`, "application/json", 422, "invalid_phone", ""},
			badInput{"fictional phone", `{"phone":"+1 555 555 0100"}`, "application/json", 422, "invalid_phone", ""},
		)},
		{soulauth.PathVerifyOTP, append(badInputs(phone+`,"code":"123456"`, "phone"),
			badInput{"wrong type", `{"phone":"+447400123456","code":123456}`, "application/json", 400, "invalid_json", ""},
			badInput{"invalid phone", `{"phone":"12","code":"123456"}`, "application/json", 422, "invalid_phone", ""},
			badInput{"malformed code", `{"phone":"+447400123456","code":"12ab"}`, "application/json", 422, "validation_failed", ""},
			badInput{"short code", `{"phone":"+447400123456","code":"12345"}`, "application/json", 422, "validation_failed", ""},
		)},
		{soulauth.PathRefresh, append(badInputs(`"refresh_token":"rt_x"`, "refresh_token"),
			badInput{"wrong type", `{"refresh_token":1}`, "application/json", 400, "invalid_json", ""},
			// A token is a guess until its hash matches: each one counts
			// against the client IP, so guessing stays slow.
			badInput{"malformed token", `{"refresh_token":"nope"}`, "application/json", 401, "invalid_refresh_token", "refresh"},
			badInput{"unknown token", `{"refresh_token":"` + unknownToken + `"}`, "application/json", 401, "invalid_refresh_token", "refresh"},
		)},
		{soulauth.PathLogout, append(badInputs(`"refresh_token":"rt_x"`, "refresh_token"),
			badInput{"wrong type", `{"refresh_token":1}`, "application/json", 400, "invalid_json", ""},
			// Logout of a token that opens nothing is 204 (see logout).
			badInput{"malformed token", `{"refresh_token":"nope"}`, "application/json", 204, "", ""},
			badInput{"unknown token", `{"refresh_token":"` + unknownToken + `"}`, "application/json", 204, "", ""},
		)},
	}
	for i, tc := range routes[3].cases {
		// The default policy in front of logout counts every request to
		// it, before soul_auth reads the body; only a Content-Length over
		// request_body's max_size is refused ahead of it.
		if tc.status != http.StatusRequestEntityTooLarge {
			routes[3].cases[i].limited = "default"
		}
	}

	secret := soultest.RandomHex(32)
	redis := testservices.StartRedis(t)
	rdb := testservices.RedisClient(t, redis.URL())
	names := soultest.LimiterKeys(t, secret)
	forEachDatabase(t, soultest.Options{RedisURL: redis.URL(), Caddyfile: relaxedCaddyfile(t), Env: map[string]string{"SECRET_KEY": secret}},
		func(t *testing.T, s *soultest.Server) {
			db := s.OpenDB(t)
			seedEveryTable(t, s)
			for _, route := range routes {
				for _, tc := range route.cases {
					t.Run(route.path+"/"+tc.name, func(t *testing.T) {
						ip := newIP()
						rowsBefore, keysBefore := rowCounts(t, db), redisDump(t, rdb)

						resp := postRaw(t, s, route.path, tc.body, tc.contentType, ip)
						if tc.code == "" {
							soultest.WantStatus(t, resp, tc.status)
							if len(resp.Body) != 0 {
								t.Errorf("body %q, want none", resp.Body)
							}
						} else {
							soultest.WantProblem(t, resp, tc.status, tc.code)
						}
						if tc.status == http.StatusUnauthorized {
							// The refresh token travels in the body, not as
							// an HTTP credential: RFC 6750's challenge is for
							// the bearer tokens of /api/me and /api/moods.
							if got := resp.Header.Get("WWW-Authenticate"); got != "" {
								t.Errorf("WWW-Authenticate %q, want none", got)
							}
						}

						if after := rowCounts(t, db); !maps.Equal(after, rowsBefore) {
							t.Errorf("rows changed: before %v, after %v", rowsBefore, after)
						}
						var allowed string
						switch tc.limited {
						case "default":
							allowed = names.StorageKey("default", "ip:"+ip)
						case "refresh":
							allowed = names.StorageKey("refresh", ip)
						}
						after := redisDump(t, rdb)
						if allowed != "" {
							if _, ok := after[allowed]; !ok {
								t.Errorf("Redis lacks the %s entry of the client: are the key names right?", tc.limited)
							}
						}
						for _, change := range redisChanges(keysBefore, after, allowed) {
							t.Error(change)
						}
					})
				}
			}
		})
}

// seedEveryTable signs a user in and leaves a row in every table a
// sign-in route could touch, so that a stray UPDATE or DELETE shows in the
// counts too: a pending code with one wrong try, a session, a mood with an
// idempotency key.
func seedEveryTable(t *testing.T, s *soultest.Server) {
	t.Helper()
	c := newClient(t, s)
	phone := newPhone()
	pair := c.signIn(phone)
	code := c.requestCode(phone) // relaxedCaddyfile: no cooldown
	soultest.WantProblem(t, c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": wrongCode(code)}),
		http.StatusUnauthorized, "invalid_code")
	resp := c.do(http.MethodPost, "/api/moods", map[string]any{"score": 5},
		"Authorization", "Bearer "+pair.AccessToken, "Idempotency-Key", "seed")
	soultest.WantStatus(t, resp, http.StatusCreated)
}

func wrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

// rowCounts counts the rows of each table sign-in owns or cascades to, and
// the states inside them a refused request must not move: tries counted
// on pending codes, revoked sessions.
func rowCounts(t *testing.T, db *bun.DB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"users", "sessions", "otp_challenges", "moods", "idempotency_keys"} {
		out[table] = soultest.Count(t, db, table, "1 = 1")
	}
	out["sessions revoked"] = soultest.Count(t, db, "sessions", "revoked_at IS NOT NULL")
	out["sessions rotated"] = soultest.Count(t, db, "sessions", "rotated_at IS NOT NULL")
	var tries int
	if err := db.NewRaw("SELECT COALESCE(SUM(attempts), 0) FROM otp_challenges").Scan(t.Context(), &tries); err != nil {
		t.Fatalf("summing tries: %v", err)
	}
	out["code tries"] = tries
	return out
}

// certStoragePrefix starts the keys of Caddy's certificate storage
// (CERT_STORAGE_PREFIX), whose housekeeping (last_clean.json) runs on its
// own schedule whatever the requests.
const certStoragePrefix = "soul:caddy:"

// redisChanges lists the keys added, removed or changed between two dumps,
// but for allowed and Caddy's certificate storage.
func redisChanges(before, after map[string][]string, allowed string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if k == allowed || strings.HasPrefix(k, certStoragePrefix) {
			continue
		}
		if old, ok := before[k]; !ok {
			out = append(out, fmt.Sprintf("Redis gained %s", k))
		} else if !slices.Equal(old, after[k]) {
			out = append(out, fmt.Sprintf("Redis changed %s", k))
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok && k != allowed && !strings.HasPrefix(k, certStoragePrefix) {
			out = append(out, fmt.Sprintf("Redis lost %s", k))
		}
	}
	return out
}

// postRaw posts body as is, with contentType unless empty, from client ip.
func postRaw(t *testing.T, s *soultest.Server, path, body, contentType, ip string) *soultest.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.BaseURL+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("X-Forwarded-For", ip)
	r, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer r.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r.Body); err != nil {
		t.Fatalf("POST %s: reading body: %v", path, err)
	}
	return &soultest.Response{Response: r, Body: buf.Bytes()}
}
