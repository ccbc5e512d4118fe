// Package problem is the one shape of every error the API answers: RFC 9457
// application/problem+json with a stable snake_case code that clients switch on.
package problem

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ContentType is the media type of every error body.
const ContentType = "application/problem+json"

// TypeBase prefixes the code to form the problem's type URI: a stable
// identifier per code, the same on every environment.
const TypeBase = "https://api.soulapp.app/problems/"

// FieldError names one invalid field of a request body or query.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is an API error. Handlers return it wrapped in caddyhttp.Error so
// the error route renders it; Detail is shown to clients, so it never holds
// secrets, codes, tokens or phone numbers.
type Error struct {
	Status int
	Code   string
	Detail string
	Fields []FieldError
	// RetryAfter, when set, becomes the Retry-After header (429, 503).
	RetryAfter time.Duration
	// Allow lists the methods of a 405 answer.
	Allow []string
	// Header holds extra response headers (WWW-Authenticate for 401).
	Header http.Header
	// Current is the resource as it stands, for a 412 precondition_failed
	// (the client merges its change into it); raw JSON.
	Current json.RawMessage
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return e.Code + ": " + e.Detail
	}
	return e.Code
}

// New returns an Error with a status, code and client-facing detail.
func New(status int, code, detail string) *Error {
	return &Error{Status: status, Code: code, Detail: detail}
}

// Validation returns the 422 answer for field errors.
func Validation(fields ...FieldError) *Error {
	return &Error{
		Status: http.StatusUnprocessableEntity,
		Code:   "validation_failed",
		Detail: "The request has invalid fields.",
		Fields: fields,
	}
}

// Body is the JSON document of an error answer.
type Body struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Code   string       `json:"code"`
	Errors []FieldError `json:"errors,omitempty"`
	// Current is the resource as it stands, on a 412.
	Current json.RawMessage `json:"current,omitempty"`
}

// CodeForStatus is the code of an error that carries only a status, such as
// Caddy's own 404 or a 413 from the body limit.
func CodeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusUnprocessableEntity:
		return "validation_failed"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusBadGateway:
		return "bad_gateway"
	case http.StatusServiceUnavailable:
		return "service_unavailable"
	case http.StatusGatewayTimeout:
		return "gateway_timeout"
	}
	if status >= 500 {
		return "internal_error"
	}
	return "http_" + strconv.Itoa(status)
}

// detailForStatus explains status-only errors; Caddy's own messages are
// internal and are not shown to clients.
func detailForStatus(status int) string {
	switch status {
	case http.StatusNotFound:
		return "No such resource."
	case http.StatusMethodNotAllowed:
		return "This method is not allowed on this resource."
	case http.StatusRequestEntityTooLarge:
		return "The request body is larger than 64 KiB."
	case http.StatusTooManyRequests:
		return "Too many requests; retry later."
	case http.StatusServiceUnavailable:
		return "The service is temporarily unavailable; retry later."
	}
	if status >= 500 {
		return "The server could not complete the request."
	}
	return ""
}

// From turns any error into an API Error with the given fallback status.
func From(err error, status int) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		status = http.StatusRequestEntityTooLarge
	}
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	return &Error{Status: status, Code: CodeForStatus(status), Detail: detailForStatus(status)}
}

// Write renders e as the response. Headers already set (Retry-After from a
// rate limiter, CORS) are kept, except those e.Header names: its values
// replace theirs, so a handler's answer can correct what a handler in front
// of it set (the rate-limit fields of the policy that refused).
func Write(w http.ResponseWriter, r *http.Request, e *Error) {
	h := w.Header()
	for k, vs := range e.Header {
		h[k] = vs
	}
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	if len(e.Allow) > 0 {
		h.Set("Allow", strings.Join(e.Allow, ", "))
	}
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	body, _ := json.Marshal(Body{
		Type:    TypeBase + e.Code,
		Title:   http.StatusText(e.Status),
		Status:  e.Status,
		Detail:  e.Detail,
		Code:    e.Code,
		Errors:  e.Fields,
		Current: e.Current,
	})
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
