package twiliotest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
)

// recordingTB keeps the failures the stand-in reports instead of failing the
// test, so a test can check that an invalid request is reported.
type recordingTB struct {
	testing.TB
	mu       sync.Mutex
	failures []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Error(args ...any) {
	r.Errorf("%s", fmt.Sprint(args...))
}

func (r *recordingTB) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.failures
	r.failures = nil
	return out
}

// TestValidation sends raw requests, so nothing but the document and the
// stand-in stands between them and the verdict.
func TestValidation(t *testing.T) {
	tb := &recordingTB{TB: t}
	srv := NewServer(tb)
	startPath := "/v2/Services/" + srv.ServiceSID + "/Verifications"
	checkPath := "/v2/Services/" + srv.ServiceSID + "/VerificationCheck"
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	const formType = "application/x-www-form-urlencoded"

	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		noAuth      bool
		status      int // 0: valid, answered normally
		mention     string
	}{
		{"valid start", "POST", startPath, formType, form("To", "+15555550100", "Channel", "sms"), false, 0, ""},
		{"valid check", "POST", checkPath, formType, form("To", "+15555550100", "Code", DefaultCode), false, 0, ""},
		{"missing To", "POST", startPath, formType, form("Channel", "sms"), false, 400, "To"},
		{"missing Channel", "POST", startPath, formType, form("To", "+15555550100"), false, 400, "Channel"},
		{"Channel other than sms", "POST", startPath, formType, form("To", "+15555550100", "Channel", "pigeon"), false, 400, "Channel"},
		{"RiskCheck outside its enum", "POST", startPath, formType, form("To", "+15555550100", "Channel", "sms", "RiskCheck", "maybe"), false, 400, "RiskCheck"},
		{"malformed ServiceSid", "POST", "/v2/Services/VA123/Verifications", formType, form("To", "+15555550100", "Channel", "sms"), false, 400, "ServiceSid"},
		{"JSON body", "POST", startPath, "application/json", `{"To":"+15555550100","Channel":"sms"}`, false, 400, "Content-Type"},
		{"VerificationSid malformed", "POST", checkPath, formType, form("To", "+15555550100", "Code", "123456", "VerificationSid", "VE1"), false, 400, "VerificationSid"},
		{"no credentials", "POST", startPath, formType, form("To", "+15555550100", "Channel", "sms"), true, 401, "security"},
		{"unknown operation", "POST", "/v2/Services/" + srv.ServiceSID + "/Verification", formType, form("To", "+15555550100"), false, 404, "no operation"},
		{"wrong method", "GET", startPath, "", "", false, 404, "no operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(srv.Requests())
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if !tt.noAuth {
				req.SetBasicAuth(srv.AccountSID, srv.AuthToken)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()

			failures := tb.take()
			reqs := srv.Requests()
			if len(reqs) != before+1 {
				t.Fatalf("recorded %d requests, want %d", len(reqs), before+1)
			}
			rec := reqs[len(reqs)-1]

			if tt.status == 0 {
				if len(failures) != 0 || rec.Invalid != nil {
					t.Fatalf("valid request reported: %q, %v", failures, rec.Invalid)
				}
				if resp.StatusCode >= 300 {
					t.Fatalf("valid request answered %d %s", resp.StatusCode, body)
				}
				return
			}
			t.Logf("rejected: %v", rec.Invalid)
			if len(failures) == 0 {
				t.Errorf("invalid request not reported as a test failure")
			}
			if rec.Invalid == nil || !strings.Contains(rec.Invalid.Error(), tt.mention) {
				t.Errorf("recorded reason %v, want one mentioning %q", rec.Invalid, tt.mention)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			var e twilioError
			if err := json.Unmarshal(body, &e); err != nil || e.Code == 0 || e.Status != tt.status || e.Message == "" || e.MoreInfo == "" {
				t.Errorf("answer %s is not a Twilio error (%v)", body, err)
			}
		})
	}
}

// The document itself must load, with the operations the client calls.
func TestDocument(t *testing.T) {
	router, err := newRouter("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v2/Services/VAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Verifications", "/v2/Services/VAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/VerificationCheck"} {
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1"+path, nil)
		route, _, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if route.Operation.Security == nil || len(*route.Operation.Security) == 0 {
			t.Errorf("%s: no security requirement", path)
		}
	}
}

// The stand-in checks its own answers too: one that strays from the
// document's shapes is reported.
func TestAnswersAreChecked(t *testing.T) {
	tb := &recordingTB{TB: t}
	srv := NewServer(tb)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v2/Services/"+srv.ServiceSID+"/Verifications", nil)
	if err != nil {
		t.Fatal(err)
	}
	route, params, err := srv.router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route}

	srv.respond(httptest.NewRecorder(), in, http.StatusCreated, map[string]any{"sid": "VE1", "channel": "pigeon"})
	if failures := tb.take(); len(failures) == 0 {
		t.Error("an answer outside the document was not reported")
	} else {
		t.Logf("reported: %s", failures[0])
	}

	v := &verification{sid: "VE" + randomHex(16), created: time.Now(), sends: []time.Time{time.Now()}}
	srv.respond(httptest.NewRecorder(), in, http.StatusCreated, srv.verificationResource("+15555550100", v, time.Now()))
	if failures := tb.take(); len(failures) != 0 {
		t.Errorf("a well-formed answer was reported: %q", failures)
	}
}
