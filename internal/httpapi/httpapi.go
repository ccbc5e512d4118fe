// Package httpapi holds the answers every SOUL handler gives: JSON bodies
// written one way, and the problems (RFC 9457, see internal/problem) that
// handlers return as errors for the error route to render: 404, 405, 503
// service_unavailable, 500. It also reads what every handler reads from a
// request the same way: a JSON body, a bearer token, the client's address.
//
// Every error of this package is a caddyhttp.HandlerError carrying a
// *problem.Error, which the soul_problem handler renders.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/soulapp/soul/internal/clientaddr"
	"github.com/soulapp/soul/internal/jsonbody"
	"github.com/soulapp/soul/internal/problem"
)

// UnavailableRetryAfter is when a client may retry after a 503: the
// Retry-After of Unavailable and of /healthz when the database is down.
const UnavailableRetryAfter = 5 * time.Second

// SetJSONHeaders sets the headers of every JSON answer: Content-Type
// application/json, and Cache-Control no-store since answers are a user's
// own and fresh. For a body streamed rather than given to WriteJSON.
func SetJSONHeaders(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
}

// WriteJSON answers status with v as JSON, Content-Length included. A v
// that cannot be marshalled is answered by returning a 500 instead, before
// anything is written. An error writing the body is the client's leaving
// and is not returned: the status has gone out already.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	return writeJSON(w, status, v, true)
}

// WriteJSONHead is WriteJSON's answer to HEAD: the same status and headers,
// Content-Length included, and no body.
func WriteJSONHead(w http.ResponseWriter, status int, v any) error {
	return writeJSON(w, status, v, false)
}

func writeJSON(w http.ResponseWriter, status int, v any, withBody bool) error {
	body, err := json.Marshal(v)
	if err != nil {
		return answer(problem.From(nil, http.StatusInternalServerError), err)
	}
	h := w.Header()
	SetJSONHeaders(h)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if withBody {
		_, _ = w.Write(body)
	}
	return nil
}

// WriteJSONBody answers status with body, JSON already encoded (for the
// answers encoded by hand: see mood.AppendList). Like WriteJSON, an error
// writing is the client's leaving and is not returned.
func WriteJSONBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	SetJSONHeaders(h)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Problem answers e: its status, its body, its headers.
func Problem(e *problem.Error) error {
	return answer(e, nil)
}

// Error answers err: the *problem.Error it holds as it is, any other error
// as Internal(err).
func Error(err error) error {
	var pe *problem.Error
	if errors.As(err, &pe) {
		return answer(pe, nil)
	}
	return answer(problem.From(nil, http.StatusInternalServerError), err)
}

// NotFound is the 404 not_found answer.
func NotFound() error {
	return answer(problem.From(nil, http.StatusNotFound), nil)
}

// MethodNotAllowed is the 405 method_not_allowed answer, whose Allow
// header lists the methods allow.
func MethodNotAllowed(allow ...string) error {
	e := problem.From(nil, http.StatusMethodNotAllowed)
	e.Allow = allow
	return answer(e, nil)
}

// UnavailableProblem is the problem of Unavailable, for a handler that adds
// headers of its own to it: 503 service_unavailable, Retry-After
// UnavailableRetryAfter.
func UnavailableProblem() *problem.Error {
	e := problem.New(http.StatusServiceUnavailable, "service_unavailable",
		"The service is temporarily unavailable; retry later.")
	e.RetryAfter = UnavailableRetryAfter
	return e
}

// Unavailable is the answer when something the request needs (the
// database) is down, restarting or out of connections: 503
// service_unavailable with Retry-After, so the client tries again. cause,
// when not nil, is joined for the logs.
func Unavailable(cause error) error {
	return answer(UnavailableProblem(), cause)
}

// Internal is the 500 answer to a failure of ours; cause, when not nil, is
// joined for the logs and never shown to the client.
func Internal(cause error) error {
	return answer(problem.From(nil, http.StatusInternalServerError), cause)
}

// answer is the HandlerError of e (and cause). Its Trace names the handler
// that answered, outside this package, as caddyhttp.Error would have had
// the handler called it.
func answer(e *problem.Error, cause error) error {
	var err error = e
	if cause != nil {
		err = errors.Join(e, cause)
	}
	return caddyhttp.Error(e.Status, caddyhttp.HandlerError{Err: err, StatusCode: e.Status, Trace: caller()})
}

// caller is the first function on the stack outside this package, in
// Caddy's trace format: "pkg.Func (file.go:line)".
func caller() string {
	var pcs [8]uintptr
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs[:])])
	for {
		f, more := frames.Next()
		if f.Function != "" && !strings.HasPrefix(f.Function, thisPackage+".") {
			return fmt.Sprintf("%s (%s:%d)", path.Base(f.Function), path.Base(f.File), f.Line)
		}
		if !more {
			return ""
		}
	}
}

const thisPackage = "github.com/soulapp/soul/internal/httpapi"

// ReadJSON decodes r's JSON body into dst: declared as application/json,
// one object, no unknown fields, within the request_body limit (see
// jsonbody.Decode). Its errors are the answers: 415, 413, 400 invalid_json.
func ReadJSON(r *http.Request, dst any) error {
	if err := jsonbody.Decode(r, dst); err != nil {
		return Error(err)
	}
	return nil
}

// ReadJSONBytes is ReadJSON for a handler that parses the body itself (with
// jsonbody.DecodeBytes and rules of its own): it checks the Content-Type
// as ReadJSON does and returns the body as read.
func ReadJSONBytes(r *http.Request) ([]byte, error) {
	body, err := jsonbody.Read(r)
	if err != nil {
		return nil, Error(err)
	}
	return body, nil
}

// Bearer returns the token of an "Authorization: Bearer <token>" header
// (RFC 6750); the scheme is case-insensitive (RFC 9110). It reports false
// for no header, another scheme or an empty token.
func Bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// Client names r's client for per-client limits: its address, or the IPv6
// network of its first v6Prefix bits (RATE_LIMIT_IPV6_PREFIX). See
// internal/clientaddr.
func Client(r *http.Request, v6Prefix int) string {
	return clientaddr.Key(ClientIP(r), v6Prefix)
}

// ClientIP is Caddy's {client_ip}: the peer's address, or the one its
// X-Forwarded-For names when the peer is a trusted proxy, never a
// stranger's header.
func ClientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
