package contract_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/soulapp/soul/api"
	"github.com/soulapp/soul/internal/contract"
)

// The document loads and validates as OpenAPI 3.1.
func TestAPIDocumentLoads(t *testing.T) {
	if _, err := contract.New(api.OpenAPI); err != nil {
		t.Fatal(err)
	}
}

const spec = `{
  "openapi": "3.1.0",
  "info": {"title": "t", "version": "1"},
  "paths": {
    "/things/{id}": {
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
      "get": {
        "responses": {
          "200": {"description": "ok", "content": {"application/json": {"schema": {
            "type": "object", "required": ["n"], "additionalProperties": false,
            "properties": {"n": {"type": "integer", "maximum": 5}, "label": {"type": ["string", "null"]}}}}}},
          "404": {"description": "no", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        }
      },
      "put": {
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
          "type": "object", "required": ["n"], "properties": {"n": {"type": "integer", "maximum": 5}}}}}},
        "responses": {"204": {"description": "ok"}, "422": {"description": "no"}}
      }
    }
  },
  "components": {"schemas": {"Problem": {"type": "object", "required": ["status", "code"],
    "properties": {"status": {"type": "integer"}, "code": {"type": "string"}}}}}
}`

// Each case is one answer of a server; the checker must accept or refuse it.
func TestCheck(t *testing.T) {
	c, err := contract.New([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	problem := func(status int, allow string) answer {
		h := http.Header{"Content-Type": {"application/problem+json"}}
		if allow != "" {
			h.Set("Allow", allow)
		}
		return answer{status, h, `{"status":` + strconv.Itoa(status) + `,"code":"x"}`}
	}
	okJSON := func(body string) answer {
		return answer{200, http.Header{"Content-Type": {"application/json"}}, body}
	}
	cases := []struct {
		name       string
		method     string
		path, body string
		answer     answer
		wantErr    string
	}{
		{"documented", "GET", "/things/1", "", okJSON(`{"n":3,"label":null}`), ""},
		{"documented problem", "GET", "/things/1", "", problem(404, ""), ""},
		{"status not listed", "GET", "/things/1", "", answer{500, nil, ""}, "does not list"},
		{"body breaks schema", "GET", "/things/1", "", okJSON(`{"n":9}`), "against the document"},
		{"extra member", "GET", "/things/1", "", okJSON(`{"n":1,"x":1}`), "against the document"},
		{"wrong content type", "GET", "/things/1", "", answer{200, http.Header{"Content-Type": {"text/plain"}}, `{"n":1}`}, "against the document"},
		{"unknown path 404", "GET", "/nothing", "", problem(404, ""), ""},
		{"unknown path answered", "GET", "/nothing", "", okJSON(`{}`), "not in the document"},
		{"unknown path rate limited", "GET", "/nothing", "", problem(429, ""), ""},
		{"unknown path over the body limit", "POST", "/nothing", "", problem(413, ""), ""},
		{"unknown path 429 not a problem", "GET", "/nothing", "", answer{429, http.Header{"Content-Type": {"text/plain"}}, "slow down"}, "not a problem"},
		{"unknown method rate limited", "POST", "/things/1", "", problem(429, ""), ""},
		{"unknown method 405", "POST", "/things/1", "", problem(405, "GET, PUT"), ""},
		{"405 with wrong Allow", "POST", "/things/1", "", problem(405, "GET"), "Allow"},
		{"unknown method answered", "DELETE", "/things/1", "", answer{204, nil, ""}, "not in the document"},
		{"empty parameter", "GET", "/things/", "", problem(404, ""), ""},
		{"empty parameter answered", "GET", "/things/", "", okJSON(`{"n":1}`), "not in the document"},
		{"trailing slash answered", "GET", "/things/1/", "", okJSON(`{"n":1}`), "not in the document"},
		{"invalid request refused", "PUT", "/things/1", `{"n":7}`, answer{422, nil, ""}, ""},
		{"invalid request accepted", "PUT", "/things/1", `{"n":7}`, answer{204, nil, ""}, "calls invalid"},
		{"valid request", "PUT", "/things/1", `{"n":2}`, answer{204, nil, ""}, ""},
		{"preflight granted", "PREFLIGHT", "/things/1", "", answer{204, http.Header{"Access-Control-Allow-Origin": {"https://app.example"}}, ""}, ""},
		{"preflight granted another origin", "PREFLIGHT", "/things/1", "", answer{204, http.Header{"Access-Control-Allow-Origin": {"https://evil.example"}}, ""}, "Access-Control-Allow-Origin"},
		{"preflight refused", "PREFLIGHT", "/things/1", "", answer{403, http.Header{"Content-Type": {"application/problem+json"}}, `{"status":403,"code":"cors_origin_not_allowed"}`}, ""},
		{"preflight refused but granted", "PREFLIGHT", "/things/1", "", answer{403, http.Header{"Content-Type": {"application/problem+json"}, "Access-Control-Allow-Origin": {"https://app.example"}}, `{"status":403,"code":"cors_origin_not_allowed"}`}, "granted"},
		{"preflight refused without the problem", "PREFLIGHT", "/things/1", "", problem(403, ""), "cors_origin_not_allowed"},
		{"preflight answered 200", "PREFLIGHT", "/things/1", "", okJSON(`{}`), "neither 204 nor 403"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				for k, v := range tc.answer.header {
					w.Header()[k] = v
				}
				w.WriteHeader(tc.answer.status)
				_, _ = io.WriteString(w, tc.answer.body)
			}))
			defer srv.Close()
			rec := &recorder{TB: t}
			client := &http.Client{Transport: c.Transport(rec, nil)}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			method := tc.method
			if method == "PREFLIGHT" {
				method = http.MethodOptions
			}
			req, _ := http.NewRequest(method, srv.URL+tc.path, body)
			if tc.method == "PREFLIGHT" {
				req.Header.Set("Origin", "https://app.example")
				req.Header.Set("Access-Control-Request-Method", "PUT")
			}
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != tc.answer.body {
				t.Errorf("the body reached the caller as %q", got)
			}
			switch {
			case tc.wantErr == "" && rec.err != "":
				t.Errorf("refused: %s", rec.err)
			case tc.wantErr != "" && !strings.Contains(rec.err, tc.wantErr):
				t.Errorf("error %q, want one with %q", rec.err, tc.wantErr)
			}
		})
	}
}

type answer struct {
	status int
	header http.Header
	body   string
}

// recorder keeps the checker's complaint instead of failing the test.
type recorder struct {
	testing.TB
	err string
}

func (r *recorder) Error(args ...any) {
	for _, a := range args {
		if e, ok := a.(error); ok {
			r.err += e.Error()
		}
	}
}

// A compressed answer is checked decoded and reaches the caller as it came;
// one that does not decode is a breach.
func TestCheckDecodesBodies(t *testing.T) {
	c, err := contract.New([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	gz := func(s string) string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		_, _ = io.WriteString(w, s)
		_ = w.Close()
		return b.String()
	}
	zst := func(s string) string {
		w, _ := zstd.NewWriter(nil)
		defer w.Close()
		return string(w.EncodeAll([]byte(s), nil))
	}
	for _, tc := range []struct {
		name, coding, body, wantErr string
	}{
		{"gzip", "gzip", gz(`{"n":3,"label":null}`), ""},
		{"zstd", "zstd", zst(`{"n":3,"label":null}`), ""},
		{"gzip breaking the schema", "gzip", gz(`{"n":9}`), "against the document"},
		{"not gzip", "gzip", `{"n":3}`, "gzip body"},
		{"unknown coding", "br", "xx", "content coding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Encoding", tc.coding)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			rec := &recorder{TB: t}
			client := &http.Client{Transport: c.Transport(rec, nil)}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/things/1", nil)
			// Asked for explicitly, so net/http leaves the body encoded.
			req.Header.Set("Accept-Encoding", tc.coding)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != tc.body {
				t.Error("the caller did not get the body as it came")
			}
			switch {
			case tc.wantErr == "" && rec.err != "":
				t.Errorf("refused: %s", rec.err)
			case tc.wantErr != "" && !strings.Contains(rec.err, tc.wantErr):
				t.Errorf("error %q, want one with %q", rec.err, tc.wantErr)
			}
		})
	}
}
