package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestWrite(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		status     int
		wantStatus int
		wantCode   string
		header     map[string]string
	}{
		{"validation", Validation(FieldError{"score", "must be 1 to 10"}), 0, 422, "validation_failed", nil},
		{"wrapped api error", fmt.Errorf("ctx: %w", New(400, "invalid_json", "bad")), 500, 400, "invalid_json", nil},
		{"status only", errors.New("internal detail"), 404, 404, "not_found", nil},
		{"body too large", &http.MaxBytesError{Limit: 10}, 400, 413, "payload_too_large", nil},
		{"retry after", &Error{Status: 429, Code: "rate_limited", RetryAfter: 1500 * time.Millisecond}, 0, 429, "rate_limited", map[string]string{"Retry-After": "2"}},
		{"allow", &Error{Status: 405, Code: "method_not_allowed", Allow: []string{"GET", "HEAD"}}, 0, 405, "method_not_allowed", map[string]string{"Allow": "GET, HEAD"}},
		{"bogus status", errors.New("x"), 200, 500, "internal_error", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			Write(w, httptest.NewRequest(http.MethodGet, "/", nil), From(tc.err, tc.status))
			if w.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d", w.Code, tc.wantStatus)
			}
			if ct := w.Header().Get("Content-Type"); ct != ContentType {
				t.Errorf("Content-Type = %q", ct)
			}
			var b Body
			if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
				t.Fatal(err)
			}
			if b.Code != tc.wantCode || b.Status != tc.wantStatus || b.Title != http.StatusText(tc.wantStatus) || b.Type != TypeBase+tc.wantCode {
				t.Errorf("body = %+v", b)
			}
			for k, v := range tc.header {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestInternalMessagesStayInternal(t *testing.T) {
	w := httptest.NewRecorder()
	Write(w, httptest.NewRequest(http.MethodGet, "/", nil), From(errors.New("pq: password authentication failed for user soul"), 500))
	if s := w.Body.String(); strings.Contains(s, "password") || strings.Contains(s, "pq:") {
		t.Fatalf("internal error leaked: %s", s)
	}
}

func TestHeadHasNoBody(t *testing.T) {
	w := httptest.NewRecorder()
	Write(w, httptest.NewRequest(http.MethodHead, "/", nil), From(nil, 404))
	if w.Body.Len() != 0 || w.Code != 404 {
		t.Fatalf("HEAD: %d with %d bytes", w.Code, w.Body.Len())
	}
}

// The fields of e.Header replace values set before the error, rather than
// adding to them: a refusal reports the policy that refused, not one a
// handler in front had allowed.
func TestHeaderReplacesEarlierValues(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Set("X-RateLimit-Remaining", "99")
	w.Header().Set("Vary", "Origin")
	e := New(http.StatusTooManyRequests, "rate_limited", "Too many requests; retry later.")
	e.Header = http.Header{}
	e.Header.Set("X-RateLimit-Remaining", "0")
	Write(w, httptest.NewRequest(http.MethodGet, "/", nil), e)
	if got := w.Header().Values("X-RateLimit-Remaining"); len(got) != 1 || got[0] != "0" {
		t.Errorf("X-RateLimit-Remaining = %q, want [0]", got)
	}
	if got := w.Header().Get("Vary"); got != "Origin" {
		t.Errorf("Vary = %q, want the earlier value kept", got)
	}
}
