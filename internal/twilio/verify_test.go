package twilio_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/twilio"
	"github.com/soulapp/soul/internal/twilio/twiliotest"
)

const phone = "+15555550100"

// assertNoSecrets fails if err's text holds the phone number, the code or
// the auth token: errors end up in logs.
func assertNoSecrets(t *testing.T, err error, c *twilio.Client, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range append(secrets, phone, strings.TrimPrefix(phone, "+"), c.AuthToken) {
		if s != "" && strings.Contains(msg, s) {
			t.Errorf("error %q contains the secret %q", msg, s)
		}
	}
}

func assertKind(t *testing.T, err error, want twilio.Kind, status, code int) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want kind %v", want)
	}
	if got := twilio.KindOf(err); got != want {
		t.Errorf("KindOf(%v) = %v, want %v", err, got, want)
	}
	if status == 0 {
		return
	}
	var te *twilio.Error
	if !errors.As(err, &te) {
		t.Fatalf("err = %T %v, want *twilio.Error", err, err)
	}
	if te.Status != status || te.Code != code || te.Kind() != want {
		t.Errorf("got status %d code %d kind %v, want %d %d %v", te.Status, te.Code, te.Kind(), status, code, want)
	}
}

func TestApproved(t *testing.T) {
	srv := twiliotest.NewServer(t)
	c := srv.Client()
	ctx := context.Background()

	if err := c.StartVerification(ctx, phone); err != nil {
		t.Fatalf("StartVerification: %v", err)
	}
	ok, err := c.CheckVerification(ctx, phone, twiliotest.DefaultCode)
	if err != nil || !ok {
		t.Fatalf("CheckVerification = %v, %v; want true, nil", ok, err)
	}

	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("stand-in got %d requests, want 2", len(reqs))
	}
	start, check := reqs[0], reqs[1]
	if start.Operation != twiliotest.OpStart || start.Form.Get("To") != phone || start.Form.Get("Channel") != "sms" {
		t.Errorf("start request = %+v", start)
	}
	if check.Operation != twiliotest.OpCheck || check.Form.Get("To") != phone || check.Form.Get("Code") != twiliotest.DefaultCode {
		t.Errorf("check request = %+v", check)
	}
	for _, r := range reqs {
		if r.Invalid != nil || r.User != srv.AccountSID {
			t.Errorf("request %+v: want valid, from %s", r, srv.AccountSID)
		}
	}
	if n := srv.Sent(phone); n != 1 {
		t.Errorf("Sent = %d, want 1", n)
	}

	// An approved verification is consumed: Twilio answers 20404 after it.
	_, err = c.CheckVerification(ctx, phone, twiliotest.DefaultCode)
	assertKind(t, err, twilio.KindExpired, http.StatusNotFound, twilio.CodeNotFound)
	assertNoSecrets(t, err, c, twiliotest.DefaultCode)
}

func TestWrongCodeIsPending(t *testing.T) {
	srv := twiliotest.NewServer(t)
	srv.Script(phone, twiliotest.Phone{Code: "246810"})
	c := srv.Client()
	ctx := context.Background()

	if err := c.StartVerification(ctx, phone); err != nil {
		t.Fatalf("StartVerification: %v", err)
	}
	ok, err := c.CheckVerification(ctx, phone, "135790")
	if err != nil || ok {
		t.Fatalf("wrong code: CheckVerification = %v, %v; want false, nil", ok, err)
	}
	ok, err = c.CheckVerification(ctx, phone, "246810")
	if err != nil || !ok {
		t.Fatalf("right code after a wrong one: CheckVerification = %v, %v; want true, nil", ok, err)
	}
}

func TestScriptedErrors(t *testing.T) {
	tests := []struct {
		name    string
		script  twiliotest.Phone
		check   bool // the failing call is CheckVerification
		kind    twilio.Kind
		status  int
		code    int
		unavail bool
	}{
		{"invalid parameter 60200", twiliotest.Phone{Start: &twiliotest.InvalidParameter}, false, twilio.KindInvalidPhone, 400, 60200, false},
		{"max check attempts 60202", twiliotest.Phone{Check: &twiliotest.MaxChecksReached}, true, twilio.KindTooManyAttempts, 429, 60202, false},
		{"max send attempts 60203", twiliotest.Phone{Start: &twiliotest.MaxSendsReached}, false, twilio.KindTooManyAttempts, 429, 60203, false},
		{"not found 20404", twiliotest.Phone{Check: &twiliotest.NotFound}, true, twilio.KindExpired, 404, 20404, false},
		{"fraud guard 60410", twiliotest.Phone{Start: &twiliotest.FraudGuardBlocked}, false, twilio.KindNotSupported, 403, 60410, false},
		{"geo permissions 60605", twiliotest.Phone{Start: &twiliotest.GeoPermissionBlocked}, false, twilio.KindNotSupported, 403, 60605, false},
		{"concurrent start 60212", twiliotest.Phone{Start: &twiliotest.TooManyConcurrent}, false, twilio.KindConcurrent, 429, 60212, false},
		{"concurrent check 60212", twiliotest.Phone{Check: &twiliotest.TooManyConcurrent}, true, twilio.KindConcurrent, 429, 60212, false},
		{"server error on start", twiliotest.Phone{Start: &twiliotest.InternalError}, false, twilio.KindUnavailable, 500, 20500, true},
		{"server error on check", twiliotest.Phone{Check: &twiliotest.InternalError}, true, twilio.KindUnavailable, 500, 20500, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := twiliotest.NewServer(t)
			srv.Script(phone, tt.script)
			c := srv.Client()
			ctx := context.Background()
			const code = "987654"

			var err error
			if tt.check {
				if err := c.StartVerification(ctx, phone); err != nil {
					t.Fatalf("StartVerification: %v", err)
				}
				var ok bool
				ok, err = c.CheckVerification(ctx, phone, code)
				if ok {
					t.Error("CheckVerification approved on an error")
				}
			} else {
				err = c.StartVerification(ctx, phone)
			}
			assertKind(t, err, tt.kind, tt.status, tt.code)
			if got := errors.Is(err, twilio.ErrUnavailable); got != tt.unavail {
				t.Errorf("errors.Is(err, ErrUnavailable) = %v, want %v", got, tt.unavail)
			}
			assertNoSecrets(t, err, c, code)
		})
	}
}

// The stand-in's own limits follow Twilio's defaults.
func TestTwilioLimits(t *testing.T) {
	srv := twiliotest.NewServer(t)
	c := srv.Client()
	ctx := context.Background()

	for i := range twiliotest.MaxSendAttempts {
		if err := c.StartVerification(ctx, phone); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	err := c.StartVerification(ctx, phone)
	assertKind(t, err, twilio.KindTooManyAttempts, 429, twilio.CodeMaxSendAttempts)

	for i := range twiliotest.MaxCheckAttempts {
		if ok, err := c.CheckVerification(ctx, phone, "000000"); ok || err != nil {
			t.Fatalf("wrong check %d = %v, %v", i+1, ok, err)
		}
	}
	_, err = c.CheckVerification(ctx, phone, twiliotest.DefaultCode)
	assertKind(t, err, twilio.KindTooManyAttempts, 429, twilio.CodeMaxCheckAttempts)
	assertNoSecrets(t, err, c, "000000", twiliotest.DefaultCode)
}

func TestExpired(t *testing.T) {
	srv := twiliotest.NewServer(t)
	c := srv.Client()
	ctx := context.Background()

	_, err := c.CheckVerification(ctx, phone, twiliotest.DefaultCode)
	assertKind(t, err, twilio.KindExpired, 404, twilio.CodeNotFound)

	if err := c.StartVerification(ctx, phone); err != nil {
		t.Fatal(err)
	}
	srv.Expire(phone)
	_, err = c.CheckVerification(ctx, phone, twiliotest.DefaultCode)
	assertKind(t, err, twilio.KindExpired, 404, twilio.CodeNotFound)
}

func TestTimeout(t *testing.T) {
	srv := twiliotest.NewServer(t)
	srv.Script(phone, twiliotest.Phone{Delay: 5 * time.Second})

	t.Run("client timeout", func(t *testing.T) {
		c := srv.Client()
		c.HTTP = &http.Client{Timeout: 100 * time.Millisecond}
		began := time.Now()
		err := c.StartVerification(context.Background(), phone)
		if d := time.Since(began); d > 2*time.Second {
			t.Errorf("gave up after %v", d)
		}
		assertKind(t, err, twilio.KindUnavailable, 0, 0)
		if !errors.Is(err, twilio.ErrUnavailable) {
			t.Errorf("errors.Is(%v, ErrUnavailable) = false", err)
		}
		assertNoSecrets(t, err, c)
	})

	t.Run("context deadline", func(t *testing.T) {
		c := srv.Client()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := c.CheckVerification(ctx, phone, "123456")
		assertKind(t, err, twilio.KindUnavailable, 0, 0)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
		}
		assertNoSecrets(t, err, c, "123456")
	})
}

func TestConnectionRefused(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	c := &twilio.Client{BaseURL: dead.URL, AccountSID: "AC1", AuthToken: "token-value", ServiceSID: "VA1"}
	err := c.StartVerification(context.Background(), phone)
	assertKind(t, err, twilio.KindUnavailable, 0, 0)
	assertNoSecrets(t, err, c)
}

func TestWrongCredentials(t *testing.T) {
	srv := twiliotest.NewServer(t)
	c := srv.Client()
	c.AuthToken = "not-the-token-0123456789abcdef"
	err := c.StartVerification(context.Background(), phone)
	assertKind(t, err, twilio.KindOther, http.StatusUnauthorized, 20003)
	assertNoSecrets(t, err, c)
}

// Answers that are not Twilio's JSON still classify by status.
func TestForeignAnswers(t *testing.T) {
	tests := []struct {
		status int
		body   string
		kind   twilio.Kind
	}{
		{http.StatusBadGateway, "<html>bad gateway</html>", twilio.KindUnavailable},
		{http.StatusServiceUnavailable, "", twilio.KindUnavailable},
		{http.StatusCreated, "<html>captive portal</html>", twilio.KindUnavailable},
		{http.StatusForbidden, "nope", twilio.KindOther},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tt.status)
			_, _ = w.Write([]byte(tt.body))
		}))
		c := &twilio.Client{BaseURL: srv.URL, AccountSID: "AC1", AuthToken: "token-value", ServiceSID: "VA1"}
		err := c.StartVerification(context.Background(), phone)
		if got := twilio.KindOf(err); got != tt.kind {
			t.Errorf("HTTP %d %q: KindOf(%v) = %v, want %v", tt.status, tt.body, err, got, tt.kind)
		}
		srv.Close()
	}
}

func TestMissingConfiguration(t *testing.T) {
	c := &twilio.Client{BaseURL: "http://127.0.0.1:1", AccountSID: "AC1", ServiceSID: "VA1"}
	err := c.StartVerification(context.Background(), phone)
	if err == nil || twilio.KindOf(err) != twilio.KindOther {
		t.Errorf("StartVerification without a token = %v, want a configuration error", err)
	}
}
