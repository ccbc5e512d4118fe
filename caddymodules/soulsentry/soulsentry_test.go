package soulsentry_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/soulapp/soul/caddymodules/soul"
	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/caddymodules/soulmoods"
	"github.com/soulapp/soul/internal/errorreport/sentrytest"
	"github.com/soulapp/soul/soultest"
)

// panicHandler stands for a handler with a bug.
type panicHandler struct{}

func (panicHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.soul_test_panic", New: func() caddy.Module { return new(panicHandler) }}
}

func (panicHandler) ServeHTTP(http.ResponseWriter, *http.Request, caddyhttp.Handler) error {
	panic("nil mood for +15555550123 after code 123456 (eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl)")
}

func init() {
	caddy.RegisterModule(panicHandler{})
	httpcaddyfile.RegisterHandlerDirective("soul_test_panic", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		h.Next()
		return panicHandler{}, nil
	})
	httpcaddyfile.RegisterDirectiveOrder("soul_test_panic", httpcaddyfile.Before, "respond")
}

// caddyfile is the production Caddyfile with two failing routes added.
func caddyfile(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(soultest.RepoRoot(), "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	routes := "handle /boom {\n\t\tsoul_test_panic\n\t}\n\thandle /fail {\n\t\terror \"upstream refused token=tok_live_secret for +15555550123\" 502\n\t}\n\thandle /healthz {"
	cfg := strings.Replace(string(b), "handle /healthz {", routes, 1)
	if cfg == string(b) {
		t.Fatal("the Caddyfile has no /healthz route to add the test routes beside")
	}
	return cfg
}

// With SENTRY_DSN unset there is no reporter and no Sentry goroutine, and
// a panic is still answered with a 500 problem.
func TestOffWithoutDSN(t *testing.T) {
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Caddyfile: caddyfile(t),
		Unchecked: "routes that fail on purpose, outside the API"})
	resp := s.Do(http.MethodGet, "/boom", nil)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500 (%s)", resp.StatusCode, resp.Body)
	}
	if p := resp.Problem(t); p.Code == "" {
		t.Errorf("no problem code in %s", resp.Body)
	}
	app, err := caddy.ActiveContext().App("soul")
	if err != nil {
		t.Fatal(err)
	}
	if rep := app.(*soul.App).Reporter(); rep != nil {
		t.Error("a reporter exists without SENTRY_DSN")
	}
	buf := make([]byte, 1<<20)
	if stacks := buf[:runtime.Stack(buf, true)]; bytes.Contains(stacks, []byte("getsentry/sentry-go")) {
		t.Errorf("a Sentry goroutine runs without SENTRY_DSN:\n%s", stacks)
	}
}

func TestPanicIsReportedWithoutSecrets(t *testing.T) {
	sentry := sentrytest.New(t)
	s := soultest.Start(t, soultest.Options{
		Database:  soultest.SQLite,
		Caddyfile: caddyfile(t),
		Env:       map[string]string{"SENTRY_DSN": sentry.URL},
		Unchecked: "routes that fail on purpose, outside the API",
	})
	resp := s.Do(http.MethodPost, "/boom?code=654321&phone=%2B15555550199", `{"code":"777777","note":"boom-note-text"}`,
		"Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
		"Cookie", "session=cookie-secret-value")
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500 (%s)", resp.StatusCode, resp.Body)
	}
	if bytes.Contains(resp.Body, []byte("nil mood")) {
		t.Errorf("the panic value reached the client: %s", resp.Body)
	}
	env := sentry.Wait(t)
	for _, want := range []string{"nil mood for +1******0123", `"environment":"staging"`, `"type":"panic"`, "/boom", `"function":"panicHandler.ServeHTTP"`} {
		if !bytes.Contains(env, []byte(want)) {
			t.Errorf("envelope lacks %q:\n%s", want, env)
		}
	}
	for _, secret := range []string{"5555550123", "5555550199", "123456", "654321", "777777", "eyJ", "c2lnbmF0dXJl", "cookie-secret-value", "Bearer", "boom-note-text"} {
		if bytes.Contains(env, []byte(secret)) {
			t.Errorf("envelope holds %q:\n%s", secret, env)
		}
	}
}

func TestServerErrorIsReportedAndClientErrorIsNot(t *testing.T) {
	sentry := sentrytest.New(t)
	s := soultest.Start(t, soultest.Options{
		Database:  soultest.SQLite,
		Caddyfile: caddyfile(t),
		Env:       map[string]string{"SENTRY_DSN": sentry.URL, "SENTRY_ENVIRONMENT": "preview"},
		Unchecked: "routes that fail on purpose, outside the API",
	})
	if resp := s.Do(http.MethodGet, "/api/nope", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status = %d, want 404", resp.StatusCode)
	}
	if resp := s.Do(http.MethodGet, "/fail", nil); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status = %d, want 502 (%s)", resp.StatusCode, resp.Body)
	}
	env := sentry.Wait(t)
	for _, want := range []string{"upstream refused token=[redacted] for +1******0123", `"environment":"preview"`, `"status":"502"`, `"error_id":`} {
		if !bytes.Contains(env, []byte(want)) {
			t.Errorf("envelope lacks %q:\n%s", want, env)
		}
	}
	if bytes.Contains(env, []byte("tok_live_secret")) {
		t.Errorf("envelope holds the token:\n%s", env)
	}
	if bytes.Contains(env, []byte("/api/nope")) {
		t.Errorf("the 404 was reported:\n%s", env)
	}
	if n := sentry.Count(); n != 1 {
		t.Errorf("%d envelopes, want 1 (the 502 only)", n)
	}
}

// A mood write the database refuses is a 500, reported with the database's
// message, and the report holds none of the mood's text (note, label,
// tags) nor the caller's credentials.
func TestFailedMoodWriteIsReportedWithoutItsText(t *testing.T) {
	sentry := sentrytest.New(t)
	s := soultest.Start(t, soultest.Options{
		Database: soultest.SQLite,
		Env:      map[string]string{"SENTRY_DSN": sentry.URL},
	})
	const phone = "+447400900123"
	signIn := func(path string, body map[string]string, v any) {
		t.Helper()
		resp := s.Do(http.MethodPost, path, body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d (%s)", path, resp.StatusCode, resp.Body)
		}
		resp.JSON(t, v)
	}
	var sent soulauth.OTPSent
	signIn(soulauth.PathOTPRequest, map[string]string{"phone": phone}, &sent)
	var pair soulauth.TokenPair
	signIn(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": sent.PreviewCode}, &pair)
	// The database refuses every new mood, as a full disk would.
	if _, err := s.OpenDB(t).Exec("CREATE TRIGGER moods_refused BEFORE INSERT ON moods BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"); err != nil {
		t.Fatal(err)
	}

	note, label, tag := "reported-note-"+soultest.RandomHex(6), "reported-label-"+soultest.RandomHex(3), "tag"+soultest.RandomHex(4)
	resp := s.Do(http.MethodPost, soulmoods.PathMoods, map[string]any{"score": 3, "note": note, "label": label, "tags": []string{tag}},
		"Authorization", "Bearer "+pair.AccessToken)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500 (%s)", resp.StatusCode, resp.Body)
	}
	env := sentry.Wait(t)
	for _, want := range []string{"database or disk is full", `"status":"500"`, soulmoods.PathMoods} {
		if !bytes.Contains(env, []byte(want)) {
			t.Errorf("envelope lacks %q:\n%s", want, env)
		}
	}
	for what, secret := range map[string]string{"note": note, "label": label, "tag": tag, "phone": phone[1:],
		"code": sent.PreviewCode, "access token": pair.AccessToken, "refresh token": pair.RefreshToken} {
		if bytes.Contains(env, []byte(secret)) {
			t.Errorf("envelope holds the mood's or caller's %s:\n%s", what, env)
		}
	}
}
