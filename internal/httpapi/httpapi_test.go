package httpapi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/soulapp/soul/internal/httpapi"
	"github.com/soulapp/soul/internal/problem"
)

// answerOf unpacks an answer: its HandlerError and the problem it carries.
func answerOf(t *testing.T, err error) (caddyhttp.HandlerError, *problem.Error) {
	t.Helper()
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) {
		t.Fatalf("%v (%T) is not a caddyhttp.HandlerError", err, err)
	}
	var pe *problem.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%v carries no *problem.Error", err)
	}
	if he.StatusCode != pe.Status {
		t.Fatalf("HandlerError status %d, problem status %d", he.StatusCode, pe.Status)
	}
	if he.ID == "" {
		t.Fatal("HandlerError has no ID")
	}
	return he, pe
}

// render writes err as the error route would.
func render(t *testing.T, err error) *httptest.ResponseRecorder {
	t.Helper()
	_, pe := answerOf(t, err)
	rec := httptest.NewRecorder()
	problem.Write(rec, httptest.NewRequest(http.MethodGet, "/", nil), pe)
	return rec
}

func TestBearer(t *testing.T) {
	for _, tc := range []struct {
		header string
		token  string
		ok     bool
	}{
		{"Bearer abc.def", "abc.def", true},
		{"bearer abc", "abc", true},
		{"BEARER abc", "abc", true},
		{"  Bearer   abc  ", "abc", true},
		{"", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer    ", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Bearerabc", "", false},
		{"Token abc", "", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		tok, ok := httpapi.Bearer(r)
		if tok != tc.token || ok != tc.ok {
			t.Errorf("Bearer(%q) = %q, %v; want %q, %v", tc.header, tok, ok, tc.token, tc.ok)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	if err := httpapi.WriteJSON(rec, http.StatusCreated, map[string]int{"score": 5}); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusCreated {
		t.Errorf("status %d", rec.Code)
	}
	want := `{"score":5}`
	for name, value := range map[string]string{
		"Content-Type":   "application/json",
		"Cache-Control":  "no-store",
		"Content-Length": "11",
	} {
		if got := rec.Header().Values(name); len(got) != 1 || got[0] != value {
			t.Errorf("%s = %q, want %q", name, got, value)
		}
	}
	if rec.Body.String() != want {
		t.Errorf("body %q, want %q", rec.Body, want)
	}

	head := httptest.NewRecorder()
	if err := httpapi.WriteJSONHead(head, http.StatusOK, map[string]int{"score": 5}); err != nil {
		t.Fatal(err)
	}
	if head.Header().Get("Content-Length") != "11" || head.Body.Len() != 0 {
		t.Errorf("HEAD: Content-Length %q, body %q", head.Header().Get("Content-Length"), head.Body)
	}
}

func TestWriteJSONMarshalError(t *testing.T) {
	rec := httptest.NewRecorder()
	err := httpapi.WriteJSON(rec, http.StatusOK, map[string]any{"f": func() {}})
	_, pe := answerOf(t, err)
	if pe.Status != http.StatusInternalServerError || pe.Code != "internal_error" {
		t.Errorf("answer %d %s", pe.Status, pe.Code)
	}
	var ue *json.UnsupportedTypeError
	if !errors.As(err, &ue) {
		t.Errorf("the marshal error is not kept for the logs: %v", err)
	}
	if rec.Code != http.StatusOK || len(rec.Header()) != 0 || rec.Body.Len() != 0 {
		t.Errorf("something was written: %d %v %q", rec.Code, rec.Header(), rec.Body)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	rec := render(t, httpapi.MethodNotAllowed(http.MethodGet, http.MethodDelete))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("status %d", rec.Code)
	}
	if got := rec.Header().Get("Allow"); got != "GET, DELETE" {
		t.Errorf("Allow %q", got)
	}
	if !strings.Contains(rec.Body.String(), `"code":"method_not_allowed"`) {
		t.Errorf("body %s", rec.Body)
	}
}

func TestNotFound(t *testing.T) {
	_, pe := answerOf(t, httpapi.NotFound())
	if want := problem.From(nil, http.StatusNotFound); pe.Status != want.Status || pe.Code != want.Code || pe.Detail != want.Detail {
		t.Errorf("NotFound = %+v", pe)
	}
}

func TestUnavailable(t *testing.T) {
	cause := errors.New("dial tcp: connection refused")
	err := httpapi.Unavailable(cause)
	if !errors.Is(err, cause) {
		t.Error("the cause is not kept for the logs")
	}
	rec := render(t, err)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" {
		t.Errorf("status %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	body := rec.Body.String()
	if !strings.Contains(body, `"code":"service_unavailable"`) ||
		!strings.Contains(body, "The service is temporarily unavailable; retry later.") {
		t.Errorf("body %s", body)
	}
	if strings.Contains(body, "refused") {
		t.Errorf("the cause is shown to the client: %s", body)
	}
	if httpapi.UnavailableRetryAfter != 5*time.Second {
		t.Errorf("UnavailableRetryAfter %s", httpapi.UnavailableRetryAfter)
	}
}

func TestInternalAndError(t *testing.T) {
	cause := errors.New("syntax error at or near")
	err := httpapi.Internal(cause)
	_, pe := answerOf(t, err)
	if pe.Status != http.StatusInternalServerError || !errors.Is(err, cause) {
		t.Errorf("Internal = %v", err)
	}
	if strings.Contains(render(t, err).Body.String(), "syntax") {
		t.Error("the cause is shown to the client")
	}

	p := problem.New(http.StatusUnprocessableEntity, "idempotency_key_reused", "Reused.")
	if _, got := answerOf(t, httpapi.Error(p)); got != p {
		t.Errorf("Error(problem) carries %+v, want the problem itself", got)
	}
	if _, got := answerOf(t, httpapi.Error(cause)); got.Status != http.StatusInternalServerError {
		t.Errorf("Error(other) = %d", got.Status)
	}
}

// The trace of an answer names the handler that gave it, not this package.
func TestTraceNamesTheCaller(t *testing.T) {
	he, _ := answerOf(t, httpapi.NotFound())
	if !strings.HasPrefix(he.Trace, "httpapi_test.TestTraceNamesTheCaller (httpapi_test.go:") {
		t.Errorf("Trace %q", he.Trace)
	}
}

func TestReadJSON(t *testing.T) {
	req := func(contentType, body string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		return r
	}
	var v struct {
		Score int `json:"score"`
	}
	if err := httpapi.ReadJSON(req("application/json; charset=utf-8", `{"score":5}`), &v); err != nil || v.Score != 5 {
		t.Fatalf("ReadJSON = %v, %+v", err, v)
	}
	for _, tc := range []struct {
		contentType, body string
		status            int
	}{
		{"text/plain", `{"score":5}`, http.StatusUnsupportedMediaType},
		{"", `{"score":5}`, http.StatusUnsupportedMediaType},
		{"application/json", `{"score":5,"x":1}`, http.StatusBadRequest},
		{"application/json", `{"score":`, http.StatusBadRequest},
	} {
		_, pe := answerOf(t, httpapi.ReadJSON(req(tc.contentType, tc.body), &v))
		if pe.Status != tc.status {
			t.Errorf("%q %q: %d, want %d", tc.contentType, tc.body, pe.Status, tc.status)
		}
	}

	body, err := httpapi.ReadJSONBytes(req("Application/JSON", `{"any":"thing"}`))
	if err != nil || string(body) != `{"any":"thing"}` {
		t.Errorf("ReadJSONBytes = %q, %v", body, err)
	}
	if _, err := httpapi.ReadJSONBytes(req("text/plain", `{}`)); err == nil {
		t.Error("ReadJSONBytes took a text/plain body")
	}
}

func TestClient(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "[2001:db8:1:2:3:4:5:6]:4242"
	if got := httpapi.Client(r, 64); got != "2001:db8:1:2::/64" {
		t.Errorf("Client = %q", got)
	}
}
