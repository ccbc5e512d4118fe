package soulauth_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/soultest"
)

func TestSignInFlow(t *testing.T) {
	forEachDatabase(t, soultest.Options{Redis: true, Caddyfile: relaxedCaddyfile(t)}, func(t *testing.T, s *soultest.Server) {
		c := newClient(t, s)
		db := s.OpenDB(t)
		phone := newPhone()

		resp := c.post(soulauth.PathOTPRequest, map[string]string{"phone": " " + phone[:3] + " " + phone[3:] + " "})
		soultest.WantStatus(t, resp, http.StatusOK)
		var sent soulauth.OTPSent
		resp.JSON(t, &sent)
		if sent.Status != "ok" || sent.ExpiresIn != 300 || len(sent.PreviewCode) != 6 {
			t.Fatalf("otp/request answered %s", resp.Body)
		}
		if n := soultest.Count(t, db, "otp_challenges", "phone = ?", phone); n != 1 {
			t.Fatalf("%d challenges stored under the E.164 phone, want 1", n)
		}

		resp = c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": sent.PreviewCode})
		soultest.WantStatus(t, resp, http.StatusOK)
		var pair soulauth.TokenPair
		resp.JSON(t, &pair)
		if pair.TokenType != "bearer" || pair.ExpiresIn != 900 || pair.AccessToken == "" || pair.RefreshToken == "" ||
			pair.User.Phone != phone || pair.User.ID == uuid.Nil || pair.User.CreatedAt.IsZero() {
			t.Fatalf("verify-otp answered %s", resp.Body)
		}
		if n := soultest.Count(t, db, "otp_challenges", "phone = ?", phone); n != 0 {
			t.Fatal("the used code is still stored")
		}
		// The code is spent.
		resp = c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": sent.PreviewCode})
		soultest.WantProblem(t, resp, http.StatusUnauthorized, "code_expired")

		resp = c.withToken(http.MethodGet, soulauth.PathMe, pair.AccessToken)
		soultest.WantStatus(t, resp, http.StatusOK)
		var me struct {
			ID        uuid.UUID `json:"id"`
			Phone     string    `json:"phone"`
			CreatedAt time.Time `json:"created_at"`
		}
		resp.JSON(t, &me)
		if me.ID != pair.User.ID || me.Phone != phone || !me.CreatedAt.Equal(pair.User.CreatedAt) {
			t.Fatalf("GET /api/me = %s, want the user of %+v", resp.Body, pair.User)
		}

		// A second sign-in finds the same account and opens a second session.
		again := newClient(t, s).signIn(phone)
		if again.User.ID != pair.User.ID {
			t.Fatalf("second sign-in made user %s, want %s", again.User.ID, pair.User.ID)
		}
		if n := soultest.Count(t, db, "sessions", "user_id = ?", pair.User.ID); n != 2 {
			t.Fatalf("%d sessions, want 2", n)
		}
		if n := soultest.Count(t, db, "users", "phone = ?", phone); n != 1 {
			t.Fatalf("%d users, want 1", n)
		}

		// A new request replaces the old code.
		old := c.requestCode(phone)
		current := c.requestCode(phone)
		if old != current {
			soultest.WantProblem(t, c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": old}),
				http.StatusUnauthorized, "invalid_code")
		}
		soultest.WantStatus(t, c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": current}), http.StatusOK)
	})
}

func TestRefreshRotation(t *testing.T) {
	forEachDatabase(t, soultest.Options{Redis: true}, func(t *testing.T, s *soultest.Server) {
		c := newClient(t, s)
		db := s.OpenDB(t)
		first := c.signIn(newPhone())
		refresh := func(tok string) *soultest.Response {
			return c.post(soulauth.PathRefresh, map[string]string{"refresh_token": tok})
		}

		resp := refresh(first.RefreshToken)
		soultest.WantStatus(t, resp, http.StatusOK)
		var second soulauth.TokenPair
		resp.JSON(t, &second)
		if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken ||
			second.User.ID != first.User.ID || second.TokenType != "bearer" {
			t.Fatalf("refresh did not rotate: %s", resp.Body)
		}

		// The parent within the grace window: the same current pair again.
		resp = refresh(first.RefreshToken)
		soultest.WantStatus(t, resp, http.StatusOK)
		var retried soulauth.TokenPair
		resp.JSON(t, &retried)
		if retried.RefreshToken != second.RefreshToken {
			t.Fatal("a retry with the parent did not get the current refresh token")
		}
		soultest.WantStatus(t, c.withToken(http.MethodGet, soulauth.PathMe, retried.AccessToken), http.StatusOK)

		// The current token rotates again.
		resp = refresh(second.RefreshToken)
		soultest.WantStatus(t, resp, http.StatusOK)
		var third soulauth.TokenPair
		resp.JSON(t, &third)

		// The parent again, after the grace window: reuse, the session dies.
		exec(t, db, "UPDATE sessions SET rotated_at = ? WHERE user_id = ?",
			time.Now().UTC().Add(-11*time.Second).Truncate(time.Microsecond), first.User.ID)
		soultest.WantProblem(t, refresh(second.RefreshToken), http.StatusUnauthorized, "invalid_refresh_token")
		if n := soultest.Count(t, db, "sessions", "user_id = ? AND revoked_at IS NOT NULL", first.User.ID); n != 1 {
			t.Fatal("reuse did not revoke the session")
		}
		if n := soultest.Count(t, db, "sessions", "grace_token IS NOT NULL"); n != 0 {
			t.Fatal("a revoked session kept its sealed token")
		}
		soultest.WantProblem(t, refresh(third.RefreshToken), http.StatusUnauthorized, "invalid_refresh_token")
		soultest.WantProblem(t, c.withToken(http.MethodGet, soulauth.PathMe, third.AccessToken), http.StatusUnauthorized, "invalid_token")

		// Junk and expired tokens.
		soultest.WantProblem(t, refresh("rt_nope"), http.StatusUnauthorized, "invalid_refresh_token")
		fresh := c.signIn(newPhone())
		exec(t, db, "UPDATE sessions SET expires_at = ? WHERE user_id = ?",
			time.Now().UTC().Add(-time.Second).Truncate(time.Microsecond), fresh.User.ID)
		soultest.WantProblem(t, refresh(fresh.RefreshToken), http.StatusUnauthorized, "invalid_refresh_token")
		soultest.WantProblem(t, c.withToken(http.MethodGet, soulauth.PathMe, fresh.AccessToken), http.StatusUnauthorized, "invalid_token")
	})
}

func TestLogout(t *testing.T) {
	forEachDatabase(t, soultest.Options{}, func(t *testing.T, s *soultest.Server) {
		c := newClient(t, s)
		pair := c.signIn(newPhone())
		other := c.signIn(newPhone())

		body := map[string]string{"refresh_token": pair.RefreshToken}
		soultest.WantStatus(t, c.post(soulauth.PathLogout, body), http.StatusNoContent)
		soultest.WantProblem(t, c.post(soulauth.PathRefresh, body), http.StatusUnauthorized, "invalid_refresh_token")
		soultest.WantProblem(t, c.withToken(http.MethodGet, soulauth.PathMe, pair.AccessToken), http.StatusUnauthorized, "invalid_token")
		// Idempotent, and silent about unknown tokens.
		soultest.WantStatus(t, c.post(soulauth.PathLogout, body), http.StatusNoContent)
		soultest.WantStatus(t, c.post(soulauth.PathLogout, map[string]string{"refresh_token": "rt_unknown"}), http.StatusNoContent)
		soultest.WantProblem(t, c.post(soulauth.PathLogout, map[string]string{}), http.StatusUnprocessableEntity, "validation_failed")
		// Other sessions live on.
		soultest.WantStatus(t, c.withToken(http.MethodGet, soulauth.PathMe, other.AccessToken), http.StatusOK)
	})
}

func TestDeleteMe(t *testing.T) {
	forEachDatabase(t, soultest.Options{Redis: true}, func(t *testing.T, s *soultest.Server) {
		c := newClient(t, s)
		db := s.OpenDB(t)
		phone := newPhone()
		pair := c.signIn(phone)
		bystander := c.signIn(newPhone())

		now := time.Now().UTC().Truncate(time.Microsecond)
		for _, owner := range []uuid.UUID{pair.User.ID, pair.User.ID, bystander.User.ID} {
			exec(t, db, "INSERT INTO moods (id, user_id, score, tags, recorded_at, created_at, updated_at) VALUES (?, ?, 5, '[]', ?, ?, ?)",
				uuid.New(), owner, now, now, now)
		}
		exec(t, db, "INSERT INTO idempotency_keys (user_id, key, request_hash, mood_id, created_at) VALUES (?, 'k1', ?, ?, ?)",
			pair.User.ID, []byte{1}, uuid.New(), now)
		exec(t, db, "INSERT INTO otp_challenges (phone, code_hash, attempts, expires_at, created_at) VALUES (?, ?, 0, ?, ?)",
			phone, []byte{1}, now.Add(time.Minute), now)

		soultest.WantStatus(t, c.withToken(http.MethodDelete, soulauth.PathMe, pair.AccessToken), http.StatusNoContent)

		for table, where := range map[string]string{
			"users": "id = ?", "moods": "user_id = ?", "sessions": "user_id = ?", "idempotency_keys": "user_id = ?",
		} {
			if n := soultest.Count(t, db, table, where, pair.User.ID); n != 0 {
				t.Errorf("%d rows left in %s", n, table)
			}
		}
		if n := soultest.Count(t, db, "otp_challenges", "phone = ?", phone); n != 0 {
			t.Error("the phone's pending code is left")
		}
		if n := soultest.Count(t, db, "moods", "user_id = ?", bystander.User.ID); n != 1 {
			t.Error("another user's mood was deleted")
		}
		soultest.WantProblem(t, c.withToken(http.MethodGet, soulauth.PathMe, pair.AccessToken), http.StatusUnauthorized, "invalid_token")
		soultest.WantProblem(t, c.withToken(http.MethodDelete, soulauth.PathMe, pair.AccessToken), http.StatusUnauthorized, "invalid_token")
		soultest.WantProblem(t, c.post(soulauth.PathRefresh, map[string]string{"refresh_token": pair.RefreshToken}),
			http.StatusUnauthorized, "invalid_refresh_token")
		soultest.WantStatus(t, c.withToken(http.MethodGet, soulauth.PathMe, bystander.AccessToken), http.StatusOK)

		// The phone's limits were forgotten: within the send cooldown it may
		// ask for a code again, and signing up makes a new account.
		again := newClient(t, s).signIn(phone)
		if again.User.ID == pair.User.ID {
			t.Fatal("the deleted account came back")
		}
	})
}

func TestCodeRules(t *testing.T) {
	forEachDatabase(t, soultest.Options{Redis: true}, func(t *testing.T, s *soultest.Server) {
		db := s.OpenDB(t)
		verify := func(c *client, phone, code string) *soultest.Response {
			return c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": code})
		}

		t.Run("cooldown", func(t *testing.T) {
			c := newClient(t, s)
			phone := newPhone()
			c.requestCode(phone)
			// From another IP too: the limit is the phone's.
			resp := newClient(t, s).post(soulauth.PathOTPRequest, map[string]string{"phone": phone})
			soultest.WantProblem(t, resp, http.StatusTooManyRequests, "rate_limited")
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
				t.Fatalf("Retry-After %q, want 1..60", resp.Header.Get("Retry-After"))
			}
		})

		t.Run("per-IP requests", func(t *testing.T) {
			c := newClient(t, s)
			for range 5 {
				c.requestCode(newPhone())
			}
			soultest.WantProblem(t, c.post(soulauth.PathOTPRequest, map[string]string{"phone": newPhone()}), http.StatusTooManyRequests, "rate_limited")
		})

		t.Run("five wrong tries burn the code", func(t *testing.T) {
			phone := newPhone()
			code := newClient(t, s).requestCode(phone)
			wrong := fmt.Sprintf("%06d", (mustAtoi(t, code)+1)%1000000)
			for i := range 5 {
				// Each try from its own IP: the burn is the phone's.
				soultest.WantProblem(t, verify(newClient(t, s), phone, wrong), http.StatusUnauthorized, "invalid_code")
				if i < 4 {
					if n := soultest.Count(t, db, "otp_challenges", "phone = ? AND attempts = ?", phone, i+1); n != 1 {
						t.Fatalf("after %d wrong tries the challenge does not count %d", i+1, i+1)
					}
				}
			}
			if n := soultest.Count(t, db, "otp_challenges", "phone = ?", phone); n != 0 {
				t.Fatal("the challenge survived five wrong tries")
			}
			resp := verify(newClient(t, s), phone, code)
			soultest.WantProblem(t, resp, http.StatusTooManyRequests, "too_many_attempts")
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("no Retry-After")
			}
		})

		t.Run("expired code", func(t *testing.T) {
			c := newClient(t, s)
			phone := newPhone()
			code := c.requestCode(phone)
			exec(t, db, "UPDATE otp_challenges SET expires_at = ? WHERE phone = ?",
				time.Now().UTC().Add(-time.Second).Truncate(time.Microsecond), phone)
			soultest.WantProblem(t, verify(c, phone, code), http.StatusUnauthorized, "code_expired")
			if n := soultest.Count(t, db, "otp_challenges", "phone = ?", phone); n != 0 {
				t.Fatal("the expired challenge was kept")
			}
		})

		t.Run("no code requested", func(t *testing.T) {
			soultest.WantProblem(t, verify(newClient(t, s), newPhone(), "123456"), http.StatusUnauthorized, "code_expired")
		})

		t.Run("per-IP verify", func(t *testing.T) {
			c := newClient(t, s)
			for range 10 {
				soultest.WantProblem(t, verify(c, newPhone(), "123456"), http.StatusUnauthorized, "code_expired")
			}
			soultest.WantProblem(t, verify(c, newPhone(), "123456"), http.StatusTooManyRequests, "rate_limited")
		})

		t.Run("invalid phones", func(t *testing.T) {
			c := newClient(t, s)
			for _, p := range []string{"12345", "+1 555 555 0100", "+44 20", "not a phone", "+999999999999"} {
				soultest.WantProblem(t, c.post(soulauth.PathOTPRequest, map[string]string{"phone": p}), http.StatusUnprocessableEntity, "invalid_phone")
				soultest.WantProblem(t, verify(c, p, "123456"), http.StatusUnprocessableEntity, "invalid_phone")
			}
		})
	})
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
