package soulauth_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/soultest"
)

func TestForgedAccessTokens(t *testing.T) {
	secret := soultest.RandomHex(32)
	forEachDatabase(t, soultest.Options{Env: map[string]string{"SECRET_KEY": secret}}, func(t *testing.T, s *soultest.Server) {
		c := newClient(t, s)
		pair := c.signIn(newPhone())
		parts := strings.Split(pair.AccessToken, ".")
		var claims map[string]any
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		if err := json.Unmarshal(raw, &claims); err != nil {
			t.Fatal(err)
		}
		if claims["sid"] == nil {
			t.Fatal("access token carries no sid")
		}
		sign := func(key []byte, method jwt.SigningMethod, edit func(jwt.MapClaims)) string {
			mc := jwt.MapClaims{}
			for k, v := range claims {
				mc[k] = v
			}
			edit(mc)
			tok, err := jwt.NewWithClaims(method, mc).SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		same := func(jwt.MapClaims) {}
		b64 := func(v any) string {
			b, _ := json.Marshal(v)
			return base64.RawURLEncoding.EncodeToString(b)
		}
		// The control: built the same way with the right key, it passes.
		soultest.WantStatus(t, c.withToken(http.MethodGet, soulauth.PathMe, sign([]byte(secret), jwt.SigningMethodHS256, same)), http.StatusOK)

		tamperedClaims := map[string]any{}
		for k, v := range claims {
			tamperedClaims[k] = v
		}
		tamperedClaims["sub"] = uuid.NewString()
		forged := map[string]string{
			"alg none":  b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + parts[1] + ".",
			"other key": sign([]byte(soultest.RandomHex(32)), jwt.SigningMethodHS256, same),
			"HS512":     sign([]byte(secret), jwt.SigningMethodHS512, same),
			"tampered":  parts[0] + "." + b64(tamperedClaims) + "." + parts[2],
			"expired": sign([]byte(secret), jwt.SigningMethodHS256, func(m jwt.MapClaims) {
				m["iat"] = time.Now().Add(-time.Hour).Unix()
				m["exp"] = time.Now().Add(-time.Minute).Unix()
			}),
			"no sid":      sign([]byte(secret), jwt.SigningMethodHS256, func(m jwt.MapClaims) { delete(m, "sid") }),
			"other sid":   sign([]byte(secret), jwt.SigningMethodHS256, func(m jwt.MapClaims) { m["sid"] = uuid.NewString() }),
			"refresh":     pair.RefreshToken,
			"garbage":     "not-a-token",
			"truncated":   pair.AccessToken[:len(pair.AccessToken)-2],
			"wrong typ":   sign([]byte(secret), jwt.SigningMethodHS256, func(m jwt.MapClaims) { m["typ"] = "refresh" }),
			"other users": sign([]byte(secret), jwt.SigningMethodHS256, func(m jwt.MapClaims) { m["sub"] = uuid.NewString() }),
		}
		for name, tok := range forged {
			t.Run(name, func(t *testing.T) {
				resp := c.withToken(http.MethodGet, soulauth.PathMe, tok)
				soultest.WantProblem(t, resp, http.StatusUnauthorized, "invalid_token")
				if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="soul", error="invalid_token"` {
					t.Fatalf("WWW-Authenticate %q", got)
				}
			})
		}
		t.Run("missing", func(t *testing.T) {
			for _, h := range []string{"", "Basic dXNlcjpwYXNz", "Bearer", "Bearer "} {
				var resp *soultest.Response
				if h == "" {
					resp = c.do(http.MethodGet, soulauth.PathMe, nil)
				} else {
					resp = c.do(http.MethodGet, soulauth.PathMe, nil, "Authorization", h)
				}
				soultest.WantProblem(t, resp, http.StatusUnauthorized, "unauthorized")
				if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="soul"` {
					t.Fatalf("WWW-Authenticate %q", got)
				}
			}
		})
	})
}

func TestRequestErrors(t *testing.T) {
	forEachDatabase(t, soultest.Options{}, func(t *testing.T, s *soultest.Server) {
		c := newClient(t, s)
		for _, path := range []string{soulauth.PathOTPRequest, soulauth.PathVerifyOTP, soulauth.PathRefresh, soulauth.PathLogout} {
			resp := c.do(http.MethodGet, path, nil)
			soultest.WantProblem(t, resp, http.StatusMethodNotAllowed, "method_not_allowed")
			if resp.Header.Get("Allow") != "POST" {
				t.Fatalf("%s: Allow %q", path, resp.Header.Get("Allow"))
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("%s: Cache-Control %q", path, resp.Header.Get("Cache-Control"))
			}
		}
		resp := c.do(http.MethodPost, soulauth.PathMe, nil)
		soultest.WantProblem(t, resp, http.StatusMethodNotAllowed, "method_not_allowed")
		if resp.Header.Get("Allow") != "GET, DELETE" {
			t.Fatalf("Allow %q", resp.Header.Get("Allow"))
		}
		soultest.WantProblem(t, c.post("/api/auth/nope", map[string]string{}), http.StatusNotFound, "not_found")
		soultest.WantProblem(t, c.do(http.MethodGet, "/api/nope", nil), http.StatusNotFound, "not_found")

		tests := []struct {
			name, body, contentType string
			status                  int
			code                    string
		}{
			{"form body", "phone=%2B447400123456", "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
			{"no content type", `{"phone":"+447400123456"}`, "", 415, "unsupported_media_type"},
			{"unparseable", `{"phone":`, "application/json", 400, "invalid_json"},
			{"unknown field", `{"phone":"+447400123456","x":1}`, "application/json", 400, "invalid_json"},
			{"wrong type", `{"phone":447400123456}`, "application/json", 400, "invalid_json"},
			{"trailing data", `{"phone":"+447400123456"} {}`, "application/json", 400, "invalid_json"},
			{"array", `[]`, "application/json", 400, "invalid_json"},
			{"empty", ``, "application/json", 400, "invalid_json"},
			{"missing phone", `{}`, "application/json", 422, "validation_failed"},
			{"charset is fine", `{"phone":"12"}`, "application/json; charset=utf-8", 422, "invalid_phone"},
			{"too large", `{"phone":"` + strings.Repeat("1", 70<<10) + `"}`, "application/json", 413, "payload_too_large"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodPost, s.BaseURL+soulauth.PathOTPRequest, bytes.NewBufferString(tt.body))
				if tt.contentType != "" {
					req.Header.Set("Content-Type", tt.contentType)
				}
				req.Header.Set("X-Forwarded-For", newIP())
				r, err := s.Client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Body.Close()
				var buf bytes.Buffer
				_, _ = buf.ReadFrom(r.Body)
				soultest.WantProblem(t, &soultest.Response{Response: r, Body: buf.Bytes()}, tt.status, tt.code)
			})
		}

		resp = c.post(soulauth.PathVerifyOTP, map[string]string{"phone": "", "code": "12ab"})
		soultest.WantProblem(t, resp, http.StatusUnprocessableEntity, "validation_failed")
		if p := resp.Problem(t); len(p.Errors) != 2 || p.Errors[0].Field != "phone" || p.Errors[1].Field != "code" {
			t.Fatalf("errors %+v", p.Errors)
		}
	})
}

// TestLogsHoldNoSecrets runs a whole sign-in at DEBUG with Caddy's logs in
// a file, with refusals (wrong codes, a burned code, a 429) and the
// account's deletion, and looks for every secret of the run in it.
func TestLogsHoldNoSecrets(t *testing.T) {
	caddyfile, readLogs := soultest.CaptureLogs(t, relaxedCaddyfile(t))
	secret := soultest.RandomHex(32)

	s := soultest.Start(t, soultest.Options{Database: soultest.Postgres, Redis: true, Caddyfile: caddyfile,
		Env: map[string]string{"SECRET_KEY": secret}})
	c := newClient(t, s)
	phone := newPhone()
	secrets := []string{secret, phone, strings.TrimPrefix(phone, "+")}
	var codes []string

	code := c.requestCode(phone)
	codes = append(codes, code)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	soultest.WantProblem(t, c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": wrong}), http.StatusUnauthorized, "invalid_code")
	pair := c.signIn(phone)
	secrets = append(secrets, pair.AccessToken, pair.RefreshToken)
	resp := c.post(soulauth.PathRefresh, map[string]string{"refresh_token": pair.RefreshToken})
	soultest.WantStatus(t, resp, http.StatusOK)
	var next soulauth.TokenPair
	resp.JSON(t, &next)
	secrets = append(secrets, next.AccessToken, next.RefreshToken)
	// Reuse after the grace window, logged as a warning.
	db := s.OpenDB(t)
	exec(t, db, "UPDATE sessions SET rotated_at = ?", time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond))
	soultest.WantStatus(t, c.post(soulauth.PathRefresh, map[string]string{"refresh_token": pair.RefreshToken}), http.StatusUnauthorized)
	last := c.signIn(phone)
	secrets = append(secrets, last.AccessToken, last.RefreshToken)
	soultest.WantStatus(t, c.withToken(http.MethodGet, soulauth.PathMe, last.AccessToken), http.StatusOK)
	soultest.WantStatus(t, c.post(soulauth.PathLogout, map[string]string{"refresh_token": last.RefreshToken}), http.StatusNoContent)
	soultest.WantProblem(t, c.withToken(http.MethodGet, soulauth.PathMe, last.AccessToken), http.StatusUnauthorized, "invalid_token")

	// Refusals: a code burned by five wrong tries, then an IP over its
	// verify limit.
	code = c.requestCode(phone)
	codes = append(codes, code)
	for range 5 {
		soultest.WantProblem(t, c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": wrongCode(code)}), http.StatusUnauthorized, "invalid_code")
	}
	soultest.WantProblem(t, c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": code}), http.StatusTooManyRequests, "too_many_attempts")
	guesser := newClient(t, s)
	guess := func() *soultest.Response {
		// A phone per guess: each phone's tries are limited too.
		other := newPhone()
		secrets = append(secrets, other, strings.TrimPrefix(other, "+"))
		return guesser.post(soulauth.PathVerifyOTP, map[string]string{"phone": other, "code": code})
	}
	for range 10 {
		soultest.WantProblem(t, guess(), http.StatusUnauthorized, "code_expired")
	}
	soultest.WantProblem(t, guess(), http.StatusTooManyRequests, "rate_limited")

	// The account deleted.
	final := newClient(t, s).signIn(phone)
	secrets = append(secrets, final.AccessToken, final.RefreshToken)
	soultest.WantStatus(t, c.withToken(http.MethodDelete, soulauth.PathMe, final.AccessToken), http.StatusNoContent)

	logs := readLogs()
	soultest.SearchLogs(t, logs, []string{"sign-in code sent", "signed in", "refresh token reused", "too_many_attempts", "rate_limited", "account deleted", `"level":"debug"`},
		secrets, codes)
	// JWT segments appear in logs only if a whole token does; a header
	// echo would show the payload segment.
	for _, tok := range []string{pair.AccessToken, next.AccessToken, last.AccessToken, final.AccessToken} {
		if bytes.Contains(logs, []byte(strings.Split(tok, ".")[1])) {
			t.Error("the logs contain an access token's payload")
		}
	}
}
