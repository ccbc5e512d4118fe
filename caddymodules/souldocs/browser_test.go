package souldocs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/soulapp/soul/api"
	"github.com/soulapp/soul/caddymodules/souldocs"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// The documentation page works under its CSP in a real browser: headless
// Chromium loads /api/docs, runs the embedded Redoc, fetches the document
// and renders every path, and the browser reports no CSP violation but
// one: Redoc's footer logo, an image on Redocly's CDN, which the policy
// blocks (no CDN) and Redoc then hides.
func TestDocsPageRendersUnderItsCSP(t *testing.T) {
	chromium := testservices.Chromium(t)
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The flags keep Chromium off the network it cannot reach here, and
	// run it as root (no sandbox) in a profile of its own.
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--enable-logging=stderr", "--v=0",
		"--virtual-time-budget=15000", "--dump-dom", s.BaseURL+souldocs.PathDocs)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}

	var doc struct {
		Info  struct{ Title string }
		Paths map[string]any
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	page := string(dom)
	if !strings.Contains(page, "<h1") || !strings.Contains(page, doc.Info.Title) {
		t.Errorf("the page shows no %q heading: Redoc did not run or did not get the document (%d bytes of DOM)", doc.Info.Title, len(dom))
	}
	for path := range doc.Paths {
		if !strings.Contains(page, path) {
			t.Errorf("the rendered page does not show %s", path)
		}
	}

	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	logoBlocked := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "Content Security Policy") {
			continue
		}
		if strings.Contains(line, "https://cdn.redoc.ly/redoc/logo-mini.svg") && strings.Contains(line, "img-src") {
			logoBlocked = true
			continue
		}
		t.Errorf("CSP violation: %s", line)
	}
	// The one expected violation shows the browser's console reached us: a
	// silent console would otherwise pass any policy.
	if !logoBlocked {
		t.Errorf("no CSP report of the blocked CDN logo: the console log was not captured\n%s", stderr.String())
	}
}
