package all_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

const strictCSP = "default-src 'none'; frame-ancestors 'none'"

func productionCaddyfile(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(soultest.RepoRoot(), "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// securityHeaders fails unless r carries every header of the security
// snippet and no Server header.
func securityHeaders(t *testing.T, what string, r *http.Response, csp string) {
	t.Helper()
	want := map[string]string{
		"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
		"X-Content-Type-Options":    "nosniff",
		"X-Frame-Options":           "DENY",
		"Referrer-Policy":           "no-referrer",
		"Content-Security-Policy":   csp,
	}
	for h, v := range want {
		if got := r.Header.Values(h); len(got) != 1 || got[0] != v {
			t.Errorf("%s: %s = %q, want %q", what, h, got, v)
		}
	}
	if s, ok := r.Header["Server"]; ok {
		t.Errorf("%s: Server = %q", what, s)
	}
}

// The site address picks the mode: a port alone is plain HTTP behind
// Railway's edge; a host name is Caddy's automatic HTTPS for that host.
func TestProductionCaddyfileSiteModes(t *testing.T) {
	type server struct {
		Listen []string `json:"listen"`
		Routes []struct {
			Match []struct {
				Host []string `json:"host"`
			} `json:"match"`
		} `json:"routes"`
		AutoHTTPS *struct {
			Disable          bool `json:"disable"`
			DisableRedirects bool `json:"disable_redirects"`
		} `json:"automatic_https"`
		TLSConnPolicies json.RawMessage `json:"tls_connection_policies"`
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]server `json:"servers"`
			} `json:"http"`
			TLS json.RawMessage `json:"tls"`
		} `json:"apps"`
	}
	adapt := func(site string) server {
		t.Helper()
		t.Setenv("SITE_ADDRESS", site)
		out, err := soultest.Adapt(productionCaddyfile(t))
		if err != nil {
			t.Fatalf("SITE_ADDRESS=%s: %v", site, err)
		}
		cfg.Apps.TLS = nil
		cfg.Apps.HTTP.Servers = nil
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatal(err)
		}
		if len(cfg.Apps.HTTP.Servers) != 1 {
			t.Fatalf("SITE_ADDRESS=%s: %d servers, want 1", site, len(cfg.Apps.HTTP.Servers))
		}
		for _, s := range cfg.Apps.HTTP.Servers {
			return s
		}
		return server{}
	}

	for _, host := range []string{"api.soulapp.app", "api-staging.soulapp.app"} {
		s := adapt(host)
		if len(s.Listen) != 1 || s.Listen[0] != ":443" {
			t.Errorf("%s: listen %q, want :443", host, s.Listen)
		}
		if len(s.Routes) != 1 || len(s.Routes[0].Match) != 1 || strings.Join(s.Routes[0].Match[0].Host, ",") != host {
			t.Errorf("%s: routes are not matched on the host alone: %+v", host, s.Routes)
		}
		if s.AutoHTTPS != nil && (s.AutoHTTPS.Disable || s.AutoHTTPS.DisableRedirects) {
			t.Errorf("%s: automatic HTTPS turned off: %+v", host, *s.AutoHTTPS)
		}
		// No issuer override: the public ACME CAs, not the internal one.
		if strings.Contains(string(cfg.Apps.TLS), `"internal"`) {
			t.Errorf("%s: tls app uses the internal issuer: %s", host, cfg.Apps.TLS)
		}
	}

	s := adapt(":8080")
	if len(s.Listen) != 1 || s.Listen[0] != ":8080" {
		t.Errorf(":8080: listen %q", s.Listen)
	}
	for _, r := range s.Routes {
		for _, m := range r.Match {
			if len(m.Host) > 0 {
				t.Errorf(":8080: a route matches hosts %q", m.Host)
			}
		}
	}
	if len(s.TLSConnPolicies) > 0 {
		t.Errorf(":8080: TLS connection policies %s", s.TLSConnPolicies)
	}
}

// Every answer carries the security headers, errors included; /api answers
// are never stored.
func TestSecurityHeaders(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Env: map[string]string{"CORS_ORIGINS": "https://app.soulapp.app"}})
	big := `{"phone":"` + strings.Repeat("1", 70<<10) + `"}`
	cases := []struct {
		name         string
		method, path string
		body         any
		headers      []string
		status       int
		api          bool
	}{
		{"health", http.MethodGet, "/healthz", nil, nil, http.StatusOK, false},
		{"unknown path", http.MethodGet, "/nope", nil, nil, http.StatusNotFound, false},
		{"unknown api path", http.MethodGet, "/api/nope", nil, nil, http.StatusNotFound, true},
		{"no token", http.MethodGet, "/api/me", nil, nil, http.StatusUnauthorized, true},
		{"body over 64 KiB", http.MethodPost, "/api/auth/otp/request", big, nil, http.StatusRequestEntityTooLarge, true},
		{"preflight", http.MethodOptions, "/api/moods", nil, []string{"Origin", "https://app.soulapp.app", "Access-Control-Request-Method", "POST"}, http.StatusNoContent, false},
		{"compressed", http.MethodGet, "/api/nope", nil, []string{"Accept-Encoding", "gzip"}, http.StatusNotFound, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Do(tc.method, tc.path, tc.body, tc.headers...)
			if r.StatusCode != tc.status {
				t.Fatalf("%s %s = %d, want %d (%s)", tc.method, tc.path, r.StatusCode, tc.status, r.Body)
			}
			securityHeaders(t, tc.name, r.Response, strictCSP)
			if tc.api {
				if got := r.Header.Values("Cache-Control"); len(got) != 1 || got[0] != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", got)
				}
			}
		})
	}
}

// /api answers are compressed with zstd or gzip, whichever the client
// prefers, and decode to the very bytes of the plain answer.
func TestCompression(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite})
	const path = "/api/openapi.json"
	// A client of its own: the bytes on the wire are what is tested, and
	// they must reach the test as sent.
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	get := func(accept string) *soultest.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, s.BaseURL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept-Encoding", accept)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return &soultest.Response{Response: resp, Body: body}
	}
	plain := get("identity")
	if plain.StatusCode != http.StatusOK || len(plain.Body) < 4<<10 {
		t.Fatalf("GET %s: status %d, %d bytes; want a 200 large enough to be compressed", path, plain.StatusCode, len(plain.Body))
	}
	if ce := plain.Header.Get("Content-Encoding"); ce != "" {
		t.Fatalf("identity asked, Content-Encoding %q", ce)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	plain.JSON(t, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("GET %s: openapi %q, want 3.1.x", path, doc.OpenAPI)
	}

	decoders := map[string]func(io.Reader) (io.Reader, error){
		"zstd": func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) },
		"gzip": func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
	}
	cases := []struct {
		accept, want string
	}{
		{"zstd", "zstd"},
		{"gzip", "gzip"},
		// The Caddyfile's order breaks a tie in the client's preferences.
		{"gzip, zstd", "zstd"},
		{"zstd;q=0.5, gzip", "gzip"},
	}
	for _, tc := range cases {
		t.Run(tc.accept, func(t *testing.T) {
			r := get(tc.accept)
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status %d", r.StatusCode)
			}
			if got := r.Header.Get("Content-Encoding"); got != tc.want {
				t.Fatalf("Content-Encoding %q, want %q", got, tc.want)
			}
			if vary := strings.Join(r.Header.Values("Vary"), ", "); !strings.Contains(vary, "Accept-Encoding") {
				t.Errorf("Vary = %q, want Accept-Encoding named", vary)
			}
			if len(r.Body) >= len(plain.Body) {
				t.Errorf("%s body %d bytes, plain %d", tc.want, len(r.Body), len(plain.Body))
			}
			dec, err := decoders[tc.want](bytes.NewReader(r.Body))
			if err != nil {
				t.Fatalf("%s: %v", tc.want, err)
			}
			body, err := io.ReadAll(dec)
			if err != nil {
				t.Fatalf("decoding %s: %v", tc.want, err)
			}
			if !bytes.Equal(body, plain.Body) {
				t.Errorf("%s body decodes to %d bytes unlike the plain %d", tc.want, len(body), len(plain.Body))
			}
			securityHeaders(t, tc.want, r.Response, strictCSP)
			if got := r.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	}
}

// The site-wide Content-Security-Policy is a default: a page that sets its
// own (the API docs) keeps it.
func TestContentSecurityPolicyIsADefault(t *testing.T) {
	snippet := regexp.MustCompile(`(?ms)^\(security_headers\) \{\n.*?^\}\n`).FindString(productionCaddyfile(t))
	if snippet == "" {
		t.Fatal("no (security_headers) snippet in the Caddyfile")
	}
	cfg := "{\n\tadmin {$ADMIN_ADDRESS}\n\tpersist_config off\n\t" + soultest.SoulOption + "\n}\n\n" + snippet + `
{$SITE_ADDRESS} {
	import security_headers
	route /page {
		header Content-Security-Policy "default-src 'self'"
		respond "page"
	}
	respond "ok"
}
`
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Caddyfile: cfg,
		Unchecked: "routes of the test's own, outside the API"})
	securityHeaders(t, "own policy", s.Do(http.MethodGet, "/page", nil).Response, "default-src 'self'")
	securityHeaders(t, "default policy", s.Do(http.MethodGet, "/other", nil).Response, strictCSP)
}

// With a host name for SITE_ADDRESS the production Caddyfile serves HTTPS
// itself. "localhost:<port>" gets a certificate from Caddy's internal CA,
// whose root (read from the configured certificate storage, Redis here) the
// client trusts, and HTTP is redirected to HTTPS.
func TestAutomaticHTTPS(t *testing.T) {
	httpPort, httpsPort := soultest.FreePort(t), soultest.FreePort(t)
	for k, v := range map[string]string{
		"SITE_ADDRESS":        "localhost:" + strconv.Itoa(httpsPort),
		"DEV_MODE":            "true",
		"SECRET_KEY":          soultest.RandomHex(32),
		"ADMIN_ADDRESS":       "127.0.0.1:" + strconv.Itoa(soultest.FreePort(t)),
		"SQLITE_PATH":         filepath.Join(t.TempDir(), "soul.db"),
		"DATABASE_URL":        "",
		"REDIS_URL":           testservices.RedisURL(t),
		"CERT_STORAGE_PREFIX": "soul:test:" + soultest.RandomHex(8) + ":",
		"LOG_LEVEL":           "ERROR",
		"XDG_CONFIG_HOME":     t.TempDir(),
		"XDG_DATA_HOME":       t.TempDir(),
	} {
		t.Setenv(k, v)
	}
	// A port the test may bind for the redirects, and no change to the
	// system's trust store.
	globals := "{\n\thttp_port " + strconv.Itoa(httpPort) + "\n\tskip_install_trust\n\tpersist_config off\n"
	cfg := regexp.MustCompile(`(?m)^\{\n`).ReplaceAllLiteralString(productionCaddyfile(t), globals)
	if !strings.Contains(cfg, "skip_install_trust") {
		t.Fatal("no global options block in the Caddyfile")
	}
	js, err := soultest.Adapt(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(js, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	base := "https://localhost:" + strconv.Itoa(httpsPort)
	var client *http.Client
	var resp *http.Response
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The CA and the certificate are made in the background at start.
		root, err := caddy.ActiveContext().Storage().Load(context.Background(), "pki/authorities/local/root.crt")
		if err == nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(root) {
				t.Fatal("root.crt holds no certificate")
			}
			client = &http.Client{
				Timeout: 10 * time.Second,
				Transport: &http.Transport{
					TLSClientConfig:   &tls.Config{RootCAs: pool},
					ForceAttemptHTTP2: true,
				},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
			resp, err = client.Get(base + "/healthz")
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no HTTPS answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz = %d", resp.StatusCode)
	}
	if resp.ProtoMajor != 2 || resp.TLS.NegotiatedProtocol != "h2" {
		t.Errorf("protocol %s, ALPN %q, want HTTP/2", resp.Proto, resp.TLS.NegotiatedProtocol)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if err := leaf.VerifyHostname("localhost"); err != nil || !strings.Contains(leaf.Issuer.CommonName, "Caddy Local Authority") {
		t.Errorf("certificate for %q issued by %q: %v", leaf.DNSNames, leaf.Issuer.CommonName, err)
	}
	securityHeaders(t, "HTTPS /healthz", resp, strictCSP)

	nf, err := client.Get(base + "/api/nope")
	if err != nil {
		t.Fatal(err)
	}
	nf.Body.Close()
	if nf.StatusCode != http.StatusNotFound || nf.ProtoMajor != 2 {
		t.Errorf("GET /api/nope = %d over %s", nf.StatusCode, nf.Proto)
	}
	securityHeaders(t, "HTTPS 404", nf, strictCSP)

	redir, err := client.Get("http://localhost:" + strconv.Itoa(httpPort) + "/api/me?x=1")
	if err != nil {
		t.Fatal(err)
	}
	redir.Body.Close()
	if redir.StatusCode != http.StatusPermanentRedirect || redir.Header.Get("Location") != base+"/api/me?x=1" {
		t.Errorf("HTTP answer %d, Location %q, want 308 to %s/api/me?x=1", redir.StatusCode, redir.Header.Get("Location"), base)
	}
}
