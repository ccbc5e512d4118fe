package souldocs_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/soulapp/soul/api"
	"github.com/soulapp/soul/caddymodules/souldocs"
	"github.com/soulapp/soul/internal/contract"
	"github.com/soulapp/soul/internal/soultest"
)

func TestDocsPage(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite})
	checker, err := contract.New(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	s.Client.Transport = checker.Transport(t, nil)

	doc := s.Do(http.MethodGet, souldocs.PathOpenAPI, nil)
	if doc.StatusCode != http.StatusOK || !bytes.Equal(doc.Body, api.OpenAPI) {
		t.Fatalf("GET %s = %d, %d bytes; want the embedded document", souldocs.PathOpenAPI, doc.StatusCode, len(doc.Body))
	}
	if ct := doc.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("document Content-Type %q", ct)
	}

	page := s.Do(http.MethodGet, souldocs.PathDocs, nil)
	if page.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", souldocs.PathDocs, page.StatusCode)
	}
	for _, want := range []string{`spec-url="` + souldocs.PathOpenAPI + `"`, `<script src="` + souldocs.PathScript + `"></script>`} {
		if !strings.Contains(string(page.Body), want) {
			t.Errorf("page has no %s", want)
		}
	}
	if strings.Contains(string(page.Body), "https://") {
		t.Error("the page loads something from elsewhere")
	}
	if csp := page.Header.Get("Content-Security-Policy"); csp != souldocs.PageCSP {
		t.Errorf("page CSP %q, want %q", csp, souldocs.PageCSP)
	}
	if !strings.Contains(souldocs.PageCSP, "script-src 'self';") || strings.Contains(souldocs.PageCSP, "unsafe-eval") {
		t.Errorf("page CSP allows scripts from elsewhere: %s", souldocs.PageCSP)
	}

	script := s.Do(http.MethodGet, souldocs.PathScript, nil)
	if script.StatusCode != http.StatusOK || len(script.Body) < 100_000 || !strings.HasPrefix(script.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("GET %s = %d, %d bytes, %s", souldocs.PathScript, script.StatusCode, len(script.Body), script.Header.Get("Content-Type"))
	}

	etag := page.Header.Get("ETag")
	if again := s.Do(http.MethodGet, souldocs.PathDocs, nil, "If-None-Match", etag); etag == "" || again.StatusCode != http.StatusNotModified {
		t.Errorf("revalidating with ETag %q answered %d, want 304", etag, again.StatusCode)
	}

	for _, path := range []string{souldocs.PathDocs, souldocs.PathOpenAPI} {
		resp := s.Do(http.MethodPost, path, "{}")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
			t.Errorf("POST %s = %d, Allow %q", path, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	if resp := s.Do(http.MethodGet, souldocs.PathDocs+"/other.js", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s/other.js = %d", souldocs.PathDocs, resp.StatusCode)
	}
	if resp := s.Do(http.MethodGet, "/healthz", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %d", resp.StatusCode)
	}
}
