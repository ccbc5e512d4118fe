package souldocs_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/soulapp/soul/api"
	"github.com/soulapp/soul/caddymodules/souldocs"
	"github.com/soulapp/soul/soultest"
)

func TestDocsPage(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite})

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

	if resp := s.Do(http.MethodGet, souldocs.PathDocs+"/other.js", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s/other.js = %d", souldocs.PathDocs, resp.StatusCode)
	}
	if resp := s.Do(http.MethodGet, "/healthz", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %d", resp.StatusCode)
	}
}

// TestDocsHead checks that every route answers HEAD as it answers GET,
// without the body (uptime checks and curl -I send HEAD), and that any
// other method is 405 with an Allow naming both.
func TestDocsHead(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite})

	for _, path := range []string{souldocs.PathOpenAPI, souldocs.PathDocs, souldocs.PathScript} {
		// Identity encoding on both, so Content-Length and ETag are those
		// of the same representation.
		get := s.Do(http.MethodGet, path, nil, "Accept-Encoding", "identity")
		head := s.Do(http.MethodHead, path, nil, "Accept-Encoding", "identity")
		if get.StatusCode != http.StatusOK || head.StatusCode != http.StatusOK {
			t.Errorf("%s: GET %d, HEAD %d; want 200 for both", path, get.StatusCode, head.StatusCode)
			continue
		}
		if len(head.Body) != 0 {
			t.Errorf("HEAD %s has a body of %d bytes", path, len(head.Body))
		}
		for _, name := range []string{"Content-Type", "ETag", "Content-Security-Policy", "Cache-Control"} {
			if g, h := get.Header.Get(name), head.Header.Get(name); g != h {
				t.Errorf("%s: %s is %q on GET, %q on HEAD", path, name, g, h)
			}
		}
		if cl := head.Header.Get("Content-Length"); cl != strconv.Itoa(len(get.Body)) {
			t.Errorf("HEAD %s: Content-Length %q, GET's body is %d bytes", path, cl, len(get.Body))
		}
		if wire := rawHead(t, s.BaseURL, path); wire != 0 {
			t.Errorf("HEAD %s sent %d bytes after the headers", path, wire)
		}
		if again := s.Do(http.MethodHead, path, nil, "If-None-Match", get.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
			t.Errorf("HEAD %s revalidated with its ETag = %d, want 304", path, again.StatusCode)
		}

		resp := s.Do(http.MethodPost, path, "{}")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("POST %s = %d, Allow %q; want 405 with GET, HEAD", path, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

// rawHead sends HEAD over a bare connection and counts what follows the
// headers: Go's client never reads a HEAD answer's body, so only the wire
// shows whether one was sent.
func rawHead(t *testing.T, baseURL, path string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "HEAD "+path+" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodHead})
	if err != nil {
		t.Fatalf("reading the answer to HEAD %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("raw HEAD %s = %d", path, resp.StatusCode)
	}
	// With Connection: close the server ends the stream after its answer;
	// anything before the end is a body that should not be there.
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading past the answer to HEAD %s: %v", path, err)
	}
	return len(rest)
}
