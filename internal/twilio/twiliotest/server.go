// Package twiliotest runs a local stand-in for Twilio Verify v2 in tests.
//
// Every request it receives, and every answer it gives, is validated against
// Twilio's own OpenAPI document for the API (testdata/twilio_verify_v2.json),
// so a client that passes against the stand-in cannot have drifted from the
// real service. A request the document rejects fails the test and gets a
// Twilio-style error answer.
//
// By default it behaves like a Verify service sending SMS: a verification
// starts pending with code DefaultCode, the right code approves it (and
// consumes it), a wrong one leaves it pending, and Twilio's limits of
// MaxSendAttempts sends and MaxCheckAttempts wrong checks apply. Script
// changes that per phone number.
package twiliotest

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/soulapp/soul/internal/twilio"
)

//go:embed testdata/twilio_verify_v2.json
var verifyDocument []byte

const (
	// DefaultCode is the code that approves a phone with no scripted Code.
	DefaultCode = "123456"
	// MaxSendAttempts is Twilio's default number of sends per verification;
	// the next one answers 60203.
	MaxSendAttempts = 5
	// MaxCheckAttempts is Twilio's default number of wrong checks per
	// verification; the next check answers 60202.
	MaxCheckAttempts = 5

	// Operation IDs of the two operations, as the document names them.
	OpStart = "CreateVerification"
	OpCheck = "CreateVerificationCheck"

	maxRequestBytes = 1 << 20
)

// Failure is a Twilio error answer. In Message, "{To}" stands for the phone
// number of the request, as Twilio quotes it in some messages.
type Failure struct {
	Status  int
	Code    int
	Message string
}

// The errors the backend tells apart, with the statuses Twilio answers them with.
var (
	InvalidParameter = Failure{http.StatusBadRequest, twilio.CodeInvalidParameter, "Invalid parameter `To`: {To}"}
	MaxChecksReached = Failure{http.StatusTooManyRequests, twilio.CodeMaxCheckAttempts, "Max check attempts reached"}
	MaxSendsReached  = Failure{http.StatusTooManyRequests, twilio.CodeMaxSendAttempts, "Max send attempts reached"}
	NotFound         = Failure{http.StatusNotFound, twilio.CodeNotFound, "The requested resource was not found"}
	InternalError    = Failure{http.StatusInternalServerError, 20500, "Internal Server Error"}
	// Fraud Guard blocked the number's prefix as suspected SMS pumping
	// (https://www.twilio.com/docs/api/errors/60410). That page names no
	// HTTP status; 403 is assumed, as for 60605, whose page says 403. The
	// backend goes by the code, not the status.
	FraudGuardBlocked = Failure{http.StatusForbidden, twilio.CodeFraudGuardBlocked, "Verification delivery attempt blocked"}
	// The Verify service's Geo Permissions do not allow the number's
	// country (https://www.twilio.com/docs/api/errors/60605: HTTP 403).
	GeoPermissionBlocked = Failure{http.StatusForbidden, twilio.CodeGeoPermission,
		"Verification delivery attempt blocked: the destination is not allowed by the service's geo permissions"}
	// Another request for the same number is in flight
	// (https://www.twilio.com/docs/api/errors/60212: HTTP 429).
	TooManyConcurrent = Failure{http.StatusTooManyRequests, twilio.CodeTooManyConcurrent, "Too many concurrent requests for phone number {To}"}
	Unauthenticated   = Failure{http.StatusUnauthorized, 20003, "Authenticate"}
)

// Phone scripts the stand-in for one phone number (E.164, as sent in To).
type Phone struct {
	Code  string        // the code that approves; DefaultCode when empty
	Start *Failure      // if set, every Verifications request answers this
	Check *Failure      // if set, every VerificationCheck request answers this
	Delay time.Duration // wait before answering; ends early if the caller gives up
}

// Request is one request the stand-in received.
type Request struct {
	Operation string // OpStart, OpCheck, or "" when no operation matched
	Method    string
	Path      string
	Form      url.Values
	User      string // HTTP Basic user name: the account SID
	Invalid   error  // why the request was rejected as invalid; nil when valid
}

// Server is a running stand-in. Point a twilio.Client at URL with the
// credentials below, or use Client.
type Server struct {
	URL        string
	AccountSID string
	AuthToken  string
	ServiceSID string

	t      testing.TB
	srv    *httptest.Server
	router routers.Router
	done   chan struct{}
	once   sync.Once

	mu       sync.Mutex
	phones   map[string]Phone
	pending  map[string]*verification
	sent     map[string]int
	requests []Request
}

type verification struct {
	sid      string
	created  time.Time
	sends    []time.Time
	failures int
}

// NewServer starts a stand-in that reports invalid requests to t and stops
// when t's test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		AccountSID: "AC" + randomHex(16),
		AuthToken:  randomHex(16),
		ServiceSID: "VA" + randomHex(16),
		t:          t,
		done:       make(chan struct{}),
		phones:     map[string]Phone{},
		pending:    map[string]*verification{},
		sent:       map[string]int{},
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	// The router needs the URL, and must be in place before the first request.
	s.URL = "http://" + s.srv.Listener.Addr().String()
	router, err := newRouter(s.URL)
	if err != nil {
		s.srv.Close()
		t.Fatalf("twiliotest: loading the Verify document: %v", err)
	}
	s.router = router
	s.srv.Start()
	t.Cleanup(s.Close)
	return s
}

// newRouter loads the document and points its servers at the stand-in: the
// document names https://verify.twilio.com, and routing matches on it.
func newRouter(base string) (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(verifyDocument)
	if err != nil {
		return nil, err
	}
	local := openapi3.Servers{{URL: base}}
	doc.Servers = local
	for _, item := range doc.Paths.Map() {
		if len(item.Servers) > 0 {
			item.Servers = local
		}
	}
	return legacy.NewRouter(doc)
}

// Client returns a client configured for the stand-in.
func (s *Server) Client() *twilio.Client {
	return &twilio.Client{
		BaseURL:    s.URL,
		AccountSID: s.AccountSID,
		AuthToken:  s.AuthToken,
		ServiceSID: s.ServiceSID,
		HTTP:       &http.Client{Timeout: 5 * time.Second},
	}
}

// Close stops the server, cutting short any delayed answer. It is called
// when the test ends.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.done)
		s.srv.Close()
	})
}

// Script sets the behaviour for one phone number, replacing any earlier one.
func (s *Server) Script(phone string, p Phone) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phones[phone] = p
}

// Expire drops the pending verification of phone, as Twilio does after ten
// minutes: the next check answers 20404.
func (s *Server) Expire(phone string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, phone)
}

// Requests returns the requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Form = cloneValues(r.Form)
		out[i] = r
	}
	return out
}

// Sent counts the SMS sent to phone: Verifications requests answered 201.
func (s *Server) Sent(phone string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[phone]
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes))
	if err != nil {
		http.Error(w, "reading request", http.StatusBadRequest)
		return
	}
	form, _ := url.ParseQuery(string(body))
	user, password, _ := r.BasicAuth()
	rec := Request{Method: r.Method, Path: r.URL.Path, Form: form, User: user}
	authorized := user == s.AccountSID && password == s.AuthToken

	// The router matches against the document's server URL, which needs the
	// scheme and host a server-side request lacks.
	routed := r.Clone(r.Context())
	routed.URL.Scheme = "http"
	routed.URL.Host = r.Host
	routed.Body = io.NopCloser(bytes.NewReader(body))
	routed.GetBody = nil

	route, params, err := s.router.FindRoute(routed)
	if err != nil {
		s.reject(w, rec, fmt.Errorf("no operation in the document for %s %s: %w", r.Method, r.URL.Path, err), NotFound)
		return
	}
	rec.Operation = route.Operation.OperationID

	input := &openapi3filter.RequestValidationInput{
		Request:    routed,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			MultiError:         true,
			AuthenticationFunc: checkSecurityScheme,
		},
	}
	if err := openapi3filter.ValidateRequest(r.Context(), input); err != nil {
		answer := Failure{http.StatusBadRequest, twilio.CodeInvalidParameter, "Invalid parameter"}
		var secErr *openapi3filter.SecurityRequirementsError
		if errors.As(err, &secErr) {
			answer = Unauthenticated
		}
		s.reject(w, rec, err, answer)
		return
	}
	// The document leaves Channel a free string; the backend only ever
	// sends SMS, so anything else is a client bug.
	if rec.Operation == OpStart && form.Get("Channel") != "sms" {
		s.reject(w, rec, fmt.Errorf("Channel is %q, want \"sms\"", form.Get("Channel")),
			Failure{http.StatusBadRequest, twilio.CodeInvalidParameter, "Invalid parameter `Channel`"})
		return
	}

	s.mu.Lock()
	s.requests = append(s.requests, rec)
	script := s.phones[form.Get("To")]
	s.mu.Unlock()

	if script.Delay > 0 {
		timer := time.NewTimer(script.Delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			return
		case <-s.done:
			panic(http.ErrAbortHandler)
		}
	}

	status, answer := s.answer(rec, authorized, params["ServiceSid"], script)
	s.respond(w, input, status, answer)
}

// checkSecurityScheme enforces the document's security scheme: HTTP Basic
// with a user name. Whether the credentials are right is Twilio's business,
// answered later with 20003 like a valid request.
func checkSecurityScheme(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	scheme := in.SecurityScheme
	if scheme.Type != "http" || !strings.EqualFold(scheme.Scheme, "basic") {
		return in.NewError(fmt.Errorf("unsupported security scheme %s/%s", scheme.Type, scheme.Scheme))
	}
	user, _, ok := in.RequestValidationInput.Request.BasicAuth()
	if !ok || user == "" {
		return in.NewError(errors.New("no HTTP Basic credentials"))
	}
	return nil
}

// reject records an invalid request, fails the test and answers like Twilio.
func (s *Server) reject(w http.ResponseWriter, rec Request, reason error, f Failure) {
	rec.Invalid = reason
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	s.t.Errorf("twiliotest: invalid request %s %s: %v", rec.Method, rec.Path, reason)
	writeJSON(w, f.Status, errorBody(f, rec.Form.Get("To")))
}

// answer decides the answer to a valid request.
func (s *Server) answer(rec Request, authorized bool, serviceSID string, script Phone) (int, any) {
	to := rec.Form.Get("To")
	switch {
	case !authorized:
		return failure(Unauthenticated, to)
	case serviceSID != s.ServiceSID:
		return failure(NotFound, to)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	switch rec.Operation {
	case OpStart:
		if script.Start != nil {
			return failure(*script.Start, to)
		}
		v := s.pending[to]
		if v == nil {
			v = &verification{sid: "VE" + randomHex(16), created: now}
			s.pending[to] = v
		}
		if len(v.sends) >= MaxSendAttempts {
			return failure(MaxSendsReached, to)
		}
		v.sends = append(v.sends, now)
		s.sent[to]++
		return http.StatusCreated, s.verificationResource(to, v, now)

	case OpCheck:
		if script.Check != nil {
			return failure(*script.Check, to)
		}
		v := s.pending[to]
		if v == nil {
			return failure(NotFound, to)
		}
		if v.failures >= MaxCheckAttempts {
			return failure(MaxChecksReached, to)
		}
		code := script.Code
		if code == "" {
			code = DefaultCode
		}
		status := "pending"
		if rec.Form.Get("Code") == code {
			status = "approved"
			// Twilio deletes an approved verification: checking it again is 20404.
			delete(s.pending, to)
		} else {
			v.failures++
		}
		return http.StatusOK, s.checkResource(to, v, status, now)
	}
	return failure(NotFound, to)
}

// respond writes the answer after checking it against the document, so the
// stand-in cannot drift from the shapes Twilio answers in.
func (s *Server) respond(w http.ResponseWriter, in *openapi3filter.RequestValidationInput, status int, answer any) {
	body, err := json.Marshal(answer)
	if err != nil {
		s.t.Errorf("twiliotest: encoding answer: %v", err)
		http.Error(w, "encoding answer", http.StatusInternalServerError)
		return
	}
	header := http.Header{"Content-Type": {"application/json"}}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{MultiError: true},
	}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(in.Request.Context(), out); err != nil {
		s.t.Errorf("twiliotest: answer %d to %s does not match the document: %v", status, in.Route.Operation.OperationID, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) verificationResource(to string, v *verification, now time.Time) verificationResource {
	attempts := make([]sendCodeAttempt, len(v.sends))
	for i, at := range v.sends {
		attempts[i] = sendCodeAttempt{Time: at.Format(time.RFC3339), Channel: "SMS", AttemptSID: "VL" + randomHex(16)}
	}
	return verificationResource{
		SID:              v.sid,
		ServiceSID:       s.ServiceSID,
		AccountSID:       s.AccountSID,
		To:               to,
		Channel:          "sms",
		Status:           "pending",
		Valid:            false,
		Lookup:           map[string]any{},
		SendCodeAttempts: attempts,
		DateCreated:      v.created.Format(time.RFC3339),
		DateUpdated:      now.Format(time.RFC3339),
		URL:              s.URL + "/v2/Services/" + s.ServiceSID + "/Verifications/" + v.sid,
	}
}

func (s *Server) checkResource(to string, v *verification, status string, now time.Time) checkResource {
	return checkResource{
		SID:                   v.sid,
		ServiceSID:            s.ServiceSID,
		AccountSID:            s.AccountSID,
		To:                    to,
		Channel:               "sms",
		Status:                status,
		Valid:                 status == "approved",
		SnaAttemptsErrorCodes: []any{},
		DateCreated:           v.created.Format(time.RFC3339),
		DateUpdated:           now.Format(time.RFC3339),
	}
}

// verificationResource is verify.v2.service.verification.
type verificationResource struct {
	SID              string            `json:"sid"`
	ServiceSID       string            `json:"service_sid"`
	AccountSID       string            `json:"account_sid"`
	To               string            `json:"to"`
	Channel          string            `json:"channel"`
	Status           string            `json:"status"`
	Valid            bool              `json:"valid"`
	Lookup           map[string]any    `json:"lookup"`
	Amount           *string           `json:"amount"`
	Payee            *string           `json:"payee"`
	SendCodeAttempts []sendCodeAttempt `json:"send_code_attempts"`
	DateCreated      string            `json:"date_created"`
	DateUpdated      string            `json:"date_updated"`
	Sna              any               `json:"sna"`
	URL              string            `json:"url"`
}

type sendCodeAttempt struct {
	Time       string `json:"time"`
	Channel    string `json:"channel"`
	AttemptSID string `json:"attempt_sid"`
}

// checkResource is verify.v2.service.verification_check.
type checkResource struct {
	SID                   string  `json:"sid"`
	ServiceSID            string  `json:"service_sid"`
	AccountSID            string  `json:"account_sid"`
	To                    string  `json:"to"`
	Channel               string  `json:"channel"`
	Status                string  `json:"status"`
	Valid                 bool    `json:"valid"`
	Amount                *string `json:"amount"`
	Payee                 *string `json:"payee"`
	SnaAttemptsErrorCodes []any   `json:"sna_attempts_error_codes"`
	DateCreated           string  `json:"date_created"`
	DateUpdated           string  `json:"date_updated"`
}

// twilioError is Twilio's error answer.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func failure(f Failure, to string) (int, any) {
	return f.Status, errorBody(f, to)
}

func errorBody(f Failure, to string) twilioError {
	return twilioError{
		Code:     f.Code,
		Message:  strings.ReplaceAll(f.Message, "{To}", to),
		MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", f.Code),
		Status:   f.Status,
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
