// Package souldocs is the `soul_docs` handler: the API's OpenAPI document at
// /api/openapi.json and a page that renders it at /api/docs, with the
// renderer's script embedded in the binary rather than loaded from a CDN.
package souldocs

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/soulapp/soul/api"
	"github.com/soulapp/soul/internal/httpapi"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// The routes this handler answers.
const (
	PathOpenAPI = "/api/openapi.json"
	PathDocs    = "/api/docs"
	PathScript  = "/api/docs/redoc.standalone.js"
)

//go:embed assets/index.html assets/redoc.standalone.js
var assets embed.FS

// PageCSP is the page's Content-Security-Policy: scripts only from here;
// inline styles because Redoc styles its elements at run time; a blob:
// worker for its search index; data: images and fonts for its icons.
const PageCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type file struct {
	body        []byte
	contentType string
	etag        string
	csp         string
}

var files = map[string]file{}

func init() {
	add := func(path, contentType, csp string, body []byte) {
		sum := sha256.Sum256(body)
		files[path] = file{
			body:        body,
			contentType: contentType,
			etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
			csp:         csp,
		}
	}
	page, _ := assets.ReadFile("assets/index.html")
	script, _ := assets.ReadFile("assets/redoc.standalone.js")
	add(PathOpenAPI, "application/json", "", api.OpenAPI)
	add(PathDocs, "text/html; charset=utf-8", PageCSP, page)
	add(PathScript, "text/javascript; charset=utf-8", "", script)
}

// Handler serves the document, the page and its script; any other path
// under /api/docs is 404.
type Handler struct{}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.soul_docs",
		New: func() caddy.Module { return new(Handler) },
	}
}

// ServeHTTP answers GET, with an ETag so a reload of the page
// costs no transfer, and HEAD (uptime checks, curl -I) with the same
// status and headers and no body, as RFC 9110 asks of a server that
// answers GET.
func (Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	f, ok := files[r.URL.Path]
	if !ok {
		return httpapi.NotFound()
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return httpapi.MethodNotAllowed(http.MethodGet, http.MethodHead)
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	if f.csp != "" {
		h.Set("Content-Security-Policy", f.csp)
	}
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Length", strconv.Itoa(len(f.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(f.body)
	return err
}

// Interface guard
var _ caddyhttp.MiddlewareHandler = (*Handler)(nil)
