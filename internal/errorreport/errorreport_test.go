package errorreport_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/errorreport"
	"github.com/soulapp/soul/internal/errorreport/sentrytest"
)

func TestScrubText(t *testing.T) {
	cases := []struct {
		name, in   string
		want       []string
		mustNotSee []string
	}{
		{"e164 phone", "send failed for +15555550123", []string{"+1******0123"}, []string{"5555550123"}},
		{"phone with spaces", "number +44 7700 900123 rejected", nil, []string{"7700 900123", "900123"}},
		{"jwt", "bad token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", []string{"[token]"}, []string{"eyJ", "c2lnbmF0dXJl"}},
		{"bearer", "header Bearer abc.def-ghi", []string{"Bearer [redacted]"}, []string{"abc.def-ghi"}},
		{"key value", `code=481516 refresh_token="rt_secret_value" password: hunter2`, nil, []string{"481516", "rt_secret_value", "hunter2"}},
		{"json pair", `{"otp":"424242","phone":"x"}`, nil, []string{"424242"}},
		{"bare otp code", "verification 123456 expired", []string{"[code]"}, []string{"123456"}},
		{"opaque token", "refresh 3q2-7wEjvS_0Zk1mTdXb8pLrQ4nYcFhA9uGiK unknown", []string{"[redacted]"}, []string{"3q2-7wEjvS_0Zk1mTdXb8pLrQ4nYcFhA9uGiK"}},
		{"harmless text kept", "database timeout after 2s on port 5432", []string{"database timeout after 2s on port 5432"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := errorreport.ScrubText(tc.in)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("ScrubText(%q) = %q, want it to contain %q", tc.in, got, w)
				}
			}
			for _, s := range tc.mustNotSee {
				if strings.Contains(got, s) {
					t.Errorf("ScrubText(%q) = %q still holds %q", tc.in, got, s)
				}
			}
		})
	}
}

func TestValidateDSN(t *testing.T) {
	if err := errorreport.ValidateDSN("http://publickey@127.0.0.1:9/1"); err != nil {
		t.Errorf("valid DSN rejected: %v", err)
	}
	for _, bad := range []string{"not a dsn", "http://127.0.0.1:9/1", "http://key@host/"} {
		err := errorreport.ValidateDSN(bad)
		if err == nil {
			t.Errorf("ValidateDSN(%q) accepted", bad)
		} else if strings.Contains(err.Error(), bad) {
			t.Errorf("error echoes the DSN: %v", err)
		}
	}
}

func TestErrorReportCarriesTheErrorAndNoSecrets(t *testing.T) {
	sentry := sentrytest.New(t)
	rep, err := errorreport.New(errorreport.Config{DSN: sentry.URL, Environment: "test", Release: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()

	r := httptest.NewRequest(http.MethodPost, "/api/auth/verify?code=654321&phone=%2B15555550123",
		strings.NewReader(`{"phone":"+15555550123","code":"654321"}`))
	r.Header.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl")
	r.Header.Set("Cookie", "session=cookie-secret-value")
	r.Header.Set("User-Agent", "SOUL-iOS/1.0")
	rep.Error(r, http.StatusBadGateway, "err-id-1",
		errors.New("twilio verify failed for +15555550123 with code 654321"))
	if !rep.Flush(5 * time.Second) {
		t.Fatal("flush timed out")
	}
	env := sentry.Wait(t)

	for _, want := range []string{"twilio verify failed for", "+1******0123", `"environment":"test"`, `"release":"v1.2.3"`, "err-id-1", "/api/auth/verify", "SOUL-iOS/1.0"} {
		if !bytes.Contains(env, []byte(want)) {
			t.Errorf("envelope lacks %q:\n%s", want, env)
		}
	}
	for _, secret := range []string{"5555550123", "654321", "eyJ", "c2lnbmF0dXJl", "cookie-secret-value", "Authorization", "Cookie", "code="} {
		if bytes.Contains(env, []byte(secret)) {
			t.Errorf("envelope holds %q:\n%s", secret, env)
		}
	}
}
