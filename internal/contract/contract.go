// Package contract checks HTTP exchanges against the API's OpenAPI
// document, so the integration tests fail when the server answers
// something the document does not describe: a route, method or status it
// does not list, a body or header that breaks its schema, or a success for
// a request the document calls invalid.
//
// Wrap the test client's transport with Checker.Transport; every exchange
// through it is checked and a breach fails the test.
package contract

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/klauspost/compress/zstd"
)

// Text bodies the API serves (the documentation page and its script) are
// checked as strings.
func init() {
	for _, ct := range []string{"text/html", "text/javascript"} {
		if openapi3filter.RegisteredBodyDecoder(ct) == nil {
			openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
		}
	}
}

// Checker holds a loaded document and its router.
type Checker struct {
	doc    *openapi3.T
	router routers.Router
}

// New loads and validates an OpenAPI document (3.0 or 3.1). Its servers are
// dropped so paths match whatever host the tests run on.
func New(spec []byte) (*Checker, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("contract: loading the document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("contract: the document is invalid: %w", err)
	}
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("contract: routing the document: %w", err)
	}
	return &Checker{doc: doc, router: router}, nil
}

// Check reports how an exchange breaks the document, or nil. reqBody and
// respBody are the bodies as sent and received (req.Body and resp.Body are
// not read).
func (c *Checker) Check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	if isPreflight(req) {
		return checkPreflight(req, resp, respBody)
	}
	route, params, err := c.router.FindRoute(req)
	if err == nil && !matchTemplate(route.Path, req.URL.Path) {
		// The router forgives a trailing slash and an empty parameter; the
		// server does not, and neither does the document.
		err = routers.ErrPathNotFound
	}
	switch {
	case isRouteError(err, routers.ErrPathNotFound) || isRouteError(err, routers.ErrMethodNotAllowed):
		// The router says "method not allowed" only for literal paths; a
		// templated path with another method counts as not found there.
		if allow := c.methods(req.URL.Path); allow != nil {
			return c.undocumented(resp, respBody, http.StatusMethodNotAllowed, allow)
		}
		return c.undocumented(resp, respBody, http.StatusNotFound, nil)
	case err != nil:
		return fmt.Errorf("contract: routing %s %s: %w", req.Method, req.URL.Path, err)
	}
	op := route.Operation
	name := req.Method + " " + route.Path
	if op.Responses.Status(resp.StatusCode) == nil && op.Responses.Default() == nil {
		return fmt.Errorf("contract: %s answered %d, which the document does not list (body %.300s)", name, resp.StatusCode, respBody)
	}

	// A request the document calls invalid must be refused.
	rin := requestInput(req, reqBody, route, params)
	if reqErr := openapi3filter.ValidateRequest(context.Background(), rin); reqErr != nil && resp.StatusCode < 400 {
		return fmt.Errorf("contract: %s answered %d to a request the document calls invalid: %v", name, resp.StatusCode, reqErr)
	}

	// HEAD and 304 carry no body to check; kin skips them.
	if req.Method == http.MethodHead || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	rin.Options = &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, AuthenticationFunc: bearerPresent}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: rin,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                rin.Options,
	}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("contract: %s answered %d against the document: %v (body %.300s)", name, resp.StatusCode, err, respBody)
	}
	return nil
}

// ValidateRequest reports why the document calls a request invalid, or nil
// when it accepts it: the check Check makes of every request, for tests
// that hold the document to the server's own refusals. body is the body as
// sent (req.Body is not read). A request for a route the document does not
// list is an error too.
func (c *Checker) ValidateRequest(req *http.Request, body []byte) error {
	route, params, err := c.router.FindRoute(req)
	if err == nil && !matchTemplate(route.Path, req.URL.Path) {
		err = routers.ErrPathNotFound
	}
	if err != nil {
		return fmt.Errorf("contract: routing %s %s: %w", req.Method, req.URL.Path, err)
	}
	return openapi3filter.ValidateRequest(context.Background(), requestInput(req, body, route, params))
}

// requestInput is what kin validates a request with: authentication stands
// in by bearerPresent, and no defaults are filled in.
func requestInput(req *http.Request, body []byte, route *routers.Route, params map[string]string) *openapi3filter.RequestValidationInput {
	return &openapi3filter.RequestValidationInput{
		Request:    cloneWithBody(req, body),
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:  bearerPresent,
			SkipSettingDefaults: true,
		},
	}
}

// isPreflight tells a CORS preflight: the browser's own OPTIONS request,
// part of the CORS protocol rather than an operation of the API, so the
// document does not list it.
func isPreflight(req *http.Request) bool {
	return req.Method == http.MethodOptions && req.Header.Get("Origin") != "" &&
		req.Header.Get("Access-Control-Request-Method") != ""
}

// checkPreflight holds a preflight's answer to what the API promises for
// one: 204 with the allowed origin echoed, or the 403 problem
// cors_origin_not_allowed without any CORS grant.
func checkPreflight(req *http.Request, resp *http.Response, body []byte) error {
	name := "preflight " + req.URL.Path
	allowOrigin := resp.Header.Get("Access-Control-Allow-Origin")
	switch resp.StatusCode {
	case http.StatusNoContent:
		if allowOrigin != req.Header.Get("Origin") && allowOrigin != "*" {
			return fmt.Errorf("contract: %s answered 204 with Access-Control-Allow-Origin %q for origin %q",
				name, allowOrigin, req.Header.Get("Origin"))
		}
		return nil
	case http.StatusForbidden:
		if allowOrigin != "" {
			return fmt.Errorf("contract: %s refused the origin but granted Access-Control-Allow-Origin %q", name, allowOrigin)
		}
		var p struct {
			Status int    `json:"status"`
			Code   string `json:"code"`
		}
		if resp.Header.Get("Content-Type") != "application/problem+json" || jsonUnmarshal(body, &p) != nil ||
			p.Status != http.StatusForbidden || p.Code != "cors_origin_not_allowed" {
			return fmt.Errorf("contract: %s answered 403 without the cors_origin_not_allowed problem (%s: %.300s)",
				name, resp.Header.Get("Content-Type"), body)
		}
		return nil
	}
	return fmt.Errorf("contract: %s answered %d, neither 204 nor 403 (body %.300s)", name, resp.StatusCode, body)
}

// edgeStatuses are answered before a request is routed, whatever its path:
// the rate limits (429) and the body limit (413). A path the document does
// not list may get them instead of its 404 or 405.
var edgeStatuses = map[int]bool{http.StatusTooManyRequests: true, http.StatusRequestEntityTooLarge: true}

// undocumented checks the answer to a path or method the document does not
// list: the API's own 404 or 405 problem, the latter with an Allow of
// exactly the documented methods, or a problem of the edge.
func (c *Checker) undocumented(resp *http.Response, body []byte, status int, allow []string) error {
	if edgeStatuses[resp.StatusCode] {
		status, allow = resp.StatusCode, nil
	}
	if resp.StatusCode != status {
		return fmt.Errorf("contract: %s %s is not in the document but answered %d, not %d (body %.300s)",
			resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("contract: %d for %s has Content-Type %q, not a problem", status, resp.Request.URL.Path, ct)
	}
	schema := c.doc.Components.Schemas["Problem"]
	if schema == nil {
		return errors.New("contract: the document has no Problem schema")
	}
	var v any
	if err := jsonUnmarshal(body, &v); err != nil {
		return fmt.Errorf("contract: %d for %s: %v", status, resp.Request.URL.Path, err)
	}
	if err := schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("contract: %d for %s is not a Problem: %v", status, resp.Request.URL.Path, err)
	}
	if allow != nil {
		got := strings.Split(resp.Header.Get("Allow"), ",")
		for i := range got {
			got[i] = strings.TrimSpace(got[i])
		}
		sort.Strings(got)
		if strings.Join(got, ", ") != strings.Join(allow, ", ") {
			return fmt.Errorf("contract: 405 for %s has Allow %q; the document lists %v",
				resp.Request.URL.Path, resp.Header.Get("Allow"), allow)
		}
	}
	return nil
}

// methods lists the documented methods of the path item a request path
// matches, sorted. A path without parameters is matched before any
// template, as OpenAPI says (/api/moods/changes before /api/moods/{id}).
func (c *Checker) methods(path string) []string {
	list := func(item *openapi3.PathItem) []string {
		var ms []string
		for m := range item.Operations() {
			ms = append(ms, strings.ToUpper(m))
		}
		sort.Strings(ms)
		return ms
	}
	if item := c.doc.Paths.Value(path); item != nil {
		return list(item)
	}
	for template, item := range c.doc.Paths.Map() {
		if matchTemplate(template, path) {
			return list(item)
		}
	}
	return nil
}

// matchTemplate matches a request path against a path template whose
// {params} each stand for one segment.
func matchTemplate(template, path string) bool {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}") {
			if ps[i] == "" {
				return false
			}
			continue
		}
		if ts[i] != ps[i] {
			return false
		}
	}
	return true
}

func isRouteError(err, want error) bool {
	var re *routers.RouteError
	return errors.As(err, &re) && re.Error() == want.Error()
}

// bearerPresent stands in for authentication: a bearer-protected operation
// needs an Authorization: Bearer header, so the checker can tell that a
// request without one was refused. Whether the token is good is the
// server's business.
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	scheme := in.SecurityScheme
	if scheme == nil || scheme.Type != "http" || !strings.EqualFold(scheme.Scheme, "bearer") {
		return nil
	}
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	if len(h) < 8 || !strings.EqualFold(h[:7], "bearer ") {
		return errors.New("no bearer token")
	}
	return nil
}

func cloneWithBody(req *http.Request, body []byte) *http.Request {
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if len(body) == 0 {
		r.Body = http.NoBody
	}
	return r
}

// Transport returns a RoundTripper that sends through next (the default
// transport when nil) and fails t when an exchange breaks the document.
func (c *Checker) Transport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{c: c, t: t, next: next}
}

type transport struct {
	c    *Checker
	t    testing.TB
	next http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		req.ContentLength = int64(len(b))
	}
	resp, err := tr.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	respBody, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	// The caller gets the bytes as they came; the document describes them
	// decoded.
	plain, err := decode(resp.Header.Get("Content-Encoding"), respBody)
	if err != nil {
		tr.t.Error(fmt.Errorf("contract: %s %s: %w", req.Method, req.URL.Path, err))
		return resp, nil
	}
	if err := tr.c.Check(req, reqBody, resp, plain); err != nil {
		tr.t.Error(err)
	}
	return resp, nil
}

// decode undoes the content codings the server uses (Caddy's encode: zstd
// and gzip).
func decode(coding string, body []byte) ([]byte, error) {
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(coding)) {
	case "", "identity":
		return body, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("zstd body: %w", err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("a body in the content coding %q, which the server does not use", coding)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decoding the %s body: %w", coding, err)
	}
	return plain, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
