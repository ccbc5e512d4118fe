package authbody_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/soulapp/soul/internal/authbody"
	"github.com/soulapp/soul/internal/problem"
)

func fuzzRequest(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// checkDecodeError asserts the only outcomes a decoder may have: success,
// or a client error problem whose detail never quotes the body.
func checkDecodeError(t *testing.T, body []byte, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var pe *problem.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a problem", err)
	}
	switch pe.Status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
	default:
		t.Fatalf("status %d for %q", pe.Status, body)
	}
	for _, f := range pe.Fields {
		if f.Field == "" || f.Message == "" {
			t.Fatalf("empty field error %+v", f)
		}
	}
	if len(body) >= 6 && strings.Contains(pe.Detail, string(body)) {
		t.Fatalf("detail %q quotes the body", pe.Detail)
	}
}

var seeds = []string{
	`{"phone":"+447400123456"}`, `{"phone":"+447400123456","code":"123456"}`, `{"refresh_token":"rt_x"}`,
	`{}`, `[]`, `null`, `""`, `{"phone":1}`, `{"phone":"a"} {}`, `{"x":1}`, `{"phone":"\u0000"}`, `{`, ``,
	`{"code":"12345a"}`, `{"phone":null,"code":null}`, `{"Phone":"+447400123456"}`,
}

func FuzzDecodeOTPRequest(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := authbody.DecodeOTPRequest(fuzzRequest(body))
		checkDecodeError(t, body, err)
		if err == nil && req.Phone == "" {
			t.Fatal("accepted a body without a phone")
		}
	})
}

func FuzzDecodeVerifyOTPRequest(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := authbody.DecodeVerifyOTPRequest(fuzzRequest(body))
		checkDecodeError(t, body, err)
		if err == nil && (req.Phone == "" || len(req.Code) != 6) {
			t.Fatalf("accepted %+v", req)
		}
	})
}

func FuzzDecodeRefreshRequest(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := authbody.DecodeRefreshRequest(fuzzRequest(body))
		checkDecodeError(t, body, err)
		if err == nil && req.RefreshToken == "" {
			t.Fatal("accepted a body without a refresh token")
		}
	})
}
