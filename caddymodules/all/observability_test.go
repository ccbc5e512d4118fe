package all_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/caddymodules/soulmoods"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/soultest"
)

// logsTo is the production Caddyfile with every log (Caddy's, ours and
// the access log) in logFile; level, when set, replaces the global log's
// level line, which otherwise stays {$LOG_LEVEL:INFO}.
func logsTo(t *testing.T, logFile, level string) string {
	t.Helper()
	cfg := productionCaddyfile(t)
	const global = "\tlog {\n\t\tlevel {$LOG_LEVEL:INFO}\n\t}"
	const access = "\t\toutput stderr\n"
	for _, anchor := range []string{global, access} {
		if strings.Count(cfg, anchor) != 1 {
			t.Fatalf("Caddyfile has %d of %q, want 1", strings.Count(cfg, anchor), anchor)
		}
	}
	if level == "" {
		level = "{$LOG_LEVEL:INFO}"
	}
	cfg = strings.Replace(cfg, global, "\tlog {\n\t\toutput file "+logFile+"\n\t\tlevel "+level+"\n\t}", 1)
	return strings.Replace(cfg, access, "\t\toutput file "+logFile+"\n", 1)
}

// observedCaddyfile is the production Caddyfile with every log in logFile
// at DEBUG.
func observedCaddyfile(t *testing.T, logFile string) string {
	t.Helper()
	cfg := logsTo(t, logFile, "DEBUG")
	// Several codes for one phone within the test.
	const auth = "refresh_token_expire_days {$REFRESH_TOKEN_EXPIRE_DAYS}"
	return strings.Replace(cfg, auth, auth+"\n\t\t\t\tlimit otp_send 100 1m\n\t\t\t\tlimit otp_send_day 100 24h", 1)
}

type flowClient struct {
	t  *testing.T
	s  *soultest.Server
	ip string
}

func (c *flowClient) do(method, path string, body any, status int, headers ...string) *soultest.Response {
	c.t.Helper()
	resp := c.s.Do(method, path, body, append([]string{"X-Forwarded-For", c.ip}, headers...)...)
	if resp.StatusCode != status {
		c.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, status, resp.Body)
	}
	return resp
}

func (c *flowClient) signIn(phone string) (code string, pair soulauth.TokenPair) {
	c.t.Helper()
	var sent soulauth.OTPSent
	c.do(http.MethodPost, soulauth.PathOTPRequest, map[string]string{"phone": phone}, http.StatusOK).JSON(c.t, &sent)
	c.do(http.MethodPost, soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": sent.PreviewCode}, http.StatusOK).JSON(c.t, &pair)
	return sent.PreviewCode, pair
}

// TestObservedFlow runs the whole API flow (migrations at start on an
// empty database, sign-in with a wrong code first, refresh, a refresh
// token reused, a mood created and its POST replayed with the same
// Idempotency-Key, listed, read, changed, exported and deleted, logout,
// account deletion) with every log at DEBUG in a file, then checks that
// the logs hold none of the run's secrets, tokens, codes, phones or mood
// bodies, that the access log is there without credentials or /healthz,
// and that the metrics page has every metric the alert rules use.
//
// It runs on Postgres and on Postgres behind PgBouncer in transaction
// pooling mode (DATABASE_PREPARED_STATEMENTS=false), where anything that
// leaned on one server connection across transactions would fail.
func TestObservedFlow(t *testing.T) {
	for _, db := range []soultest.Database{soultest.Postgres, soultest.PgBouncer} {
		t.Run(string(db), func(t *testing.T) { observedFlow(t, db) })
	}
}

func observedFlow(t *testing.T, dbName soultest.Database) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	secret := soultest.RandomHex(32)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(soultest.FreePort(t))
	s := soultest.Start(t, soultest.Options{Database: dbName, Redis: true,
		Caddyfile: observedCaddyfile(t, logFile),
		Env:       map[string]string{"SECRET_KEY": secret, "METRICS_ADDRESS": metricsAddr, "LOG_LEVEL": "DEBUG"}})
	c := &flowClient{t: t, s: s, ip: "203.0.113.77"}
	// Counters live as long as the process: the flow's are the difference.
	before := scrape(t, "http://"+metricsAddr+"/metrics")
	phone := fmt.Sprintf("+4474009%05d", time.Now().UnixNano()%100000)
	secrets := []string{secret, phone, strings.TrimPrefix(phone, "+")}

	var sent soulauth.OTPSent
	c.do(http.MethodPost, soulauth.PathOTPRequest, map[string]string{"phone": phone}, http.StatusOK).JSON(t, &sent)
	wrong := "000000"
	if sent.PreviewCode == wrong {
		wrong = "111111"
	}
	c.do(http.MethodPost, soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": wrong}, http.StatusUnauthorized)
	var pair soulauth.TokenPair
	c.do(http.MethodPost, soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": sent.PreviewCode}, http.StatusOK).JSON(t, &pair)
	codes := []string{sent.PreviewCode}
	secrets = append(secrets, pair.AccessToken, pair.RefreshToken)

	var next soulauth.TokenPair
	c.do(http.MethodPost, soulauth.PathRefresh, map[string]string{"refresh_token": pair.RefreshToken}, http.StatusOK).JSON(t, &next)
	secrets = append(secrets, next.AccessToken, next.RefreshToken)
	// Reuse after the grace window: the session is revoked, with a warning.
	db, _, err := database.Open(context.Background(), database.Config{URL: s.DatabaseURL}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), "UPDATE sessions SET rotated_at = ?", time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	c.do(http.MethodPost, soulauth.PathRefresh, map[string]string{"refresh_token": pair.RefreshToken}, http.StatusUnauthorized)

	code, last := c.signIn(phone)
	codes = append(codes, code)
	secrets = append(secrets, last.AccessToken, last.RefreshToken)
	bearer := "Bearer " + last.AccessToken
	note := "private-note-" + soultest.RandomHex(8)
	secrets = append(secrets, note)
	moodBody := map[string]any{"score": 7, "note": note, "tags": []string{"work"}}
	created := c.do(http.MethodPost, soulmoods.PathMoods, moodBody, http.StatusCreated, "Authorization", bearer, "Idempotency-Key", "flow-1")
	var m mood.Mood
	created.JSON(t, &m)
	// A retry with the same key answers the first answer and adds nothing.
	replayed := c.do(http.MethodPost, soulmoods.PathMoods, moodBody, http.StatusCreated, "Authorization", bearer, "Idempotency-Key", "flow-1")
	if !bytes.Equal(replayed.Body, created.Body) {
		t.Errorf("replayed POST answered %s, the first %s", replayed.Body, created.Body)
	}
	if n := soultest.Count(t, db, "moods", "user_id = ?", last.User.ID); n != 1 {
		t.Errorf("%d moods after a replayed POST, want 1", n)
	}
	c.do(http.MethodGet, soulmoods.PathMoods+"?limit=5", nil, http.StatusOK, "Authorization", bearer, "Cookie", "session="+secret)
	// Reads at once open several database connections, and behind
	// PgBouncer several server connections, so that the requests after
	// them are served by whichever is free: a statement prepared on one
	// and used on another would fail them.
	var wg sync.WaitGroup
	for i := 0; i < burst; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := s.Do(http.MethodGet, soulmoods.PathMoods, nil, "X-Forwarded-For", c.ip, "Authorization", bearer)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s in a burst: %d %s", soulmoods.PathMoods, resp.StatusCode, resp.Body)
			}
		}()
	}
	wg.Wait()
	moodPath := soulmoods.PathMoods + "/" + m.ID.String()
	var got mood.Mood
	c.do(http.MethodGet, moodPath, nil, http.StatusOK, "Authorization", bearer).JSON(t, &got)
	if got.ID != m.ID || got.Score != 7 {
		t.Errorf("GET %s: %+v", moodPath, got)
	}
	c.do(http.MethodPatch, moodPath, map[string]any{"score": 4}, http.StatusOK, "Authorization", bearer).JSON(t, &got)
	if got.Score != 4 {
		t.Errorf("PATCH score 4: %+v", got)
	}
	var export struct {
		Moods []mood.Mood `json:"moods"`
	}
	c.do(http.MethodGet, soulauth.PathExport, nil, http.StatusOK, "Authorization", bearer).JSON(t, &export)
	if len(export.Moods) != 1 || export.Moods[0].ID != m.ID || export.Moods[0].Score != 4 {
		t.Errorf("export: %+v, want the one mood, changed", export.Moods)
	}
	c.do(http.MethodDelete, moodPath, nil, http.StatusNoContent, "Authorization", bearer)
	c.do(http.MethodGet, moodPath, nil, http.StatusNotFound, "Authorization", bearer)
	c.do(http.MethodGet, "/healthz", nil, http.StatusOK)
	c.do(http.MethodPost, soulauth.PathLogout, map[string]string{"refresh_token": last.RefreshToken}, http.StatusNoContent)
	code, gone := c.signIn(phone)
	codes = append(codes, code)
	secrets = append(secrets, gone.AccessToken, gone.RefreshToken)
	c.do(http.MethodDelete, soulauth.PathMe, nil, http.StatusNoContent, "Authorization", "Bearer "+gone.AccessToken)
	if n := soultest.Count(t, db, "users", "id = ?", gone.User.ID) + soultest.Count(t, db, "sessions", "user_id = ?", gone.User.ID); n != 0 {
		t.Errorf("%d rows of the deleted account left", n)
	}

	page := scrape(t, "http://"+metricsAddr+"/metrics")

	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	// The checks are only worth something if the run was logged.
	soultest.SearchLogs(t, logs, []string{"sign-in code sent", "signed in", "refresh token reused", "account deleted",
		`"level":"debug"`, `"logger":"http.log.access.log0"`, `"uri":"/api/moods?limit=5"`, `"phone":"+44*`}, secrets, codes)
	// A header echo would show a token's payload segment even if cut.
	for _, tok := range []string{pair.AccessToken, next.AccessToken, last.AccessToken, gone.AccessToken} {
		if bytes.Contains(logs, []byte(strings.Split(tok, ".")[1])) {
			t.Error("the logs contain an access token's payload")
		}
	}
	for _, line := range bytes.Split(logs, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"logger":"http.log.access`)) {
			continue
		}
		if bytes.Contains(line, []byte(`"Authorization"`)) || bytes.Contains(line, []byte(`"Cookie"`)) {
			t.Errorf("an access log entry names a credential header: %s", line)
		}
		if bytes.Contains(line, []byte(`"uri":"/healthz"`)) {
			t.Errorf("/healthz in the access log: %s", line)
		}
	}

	checkMetricsPage(t, before, page)
}

// burst is how many reads of the flow go at once.
const burst = 16

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}

// checkMetricsPage checks the metrics a flow leaves, that every metric the
// alert rules name is exported, and that no label carries a phone, id or
// raw path.
func checkMetricsPage(t *testing.T, before, page string) {
	t.Helper()
	for series, want := range map[string]float64{
		`soul_otp_sends_total{result="ok"}`:            3,
		`soul_otp_checks_total{result="invalid_code"}`: 1,
		`soul_otp_checks_total{result="ok"}`:           3,
		`soul_refreshes_total{result="ok"}`:            1,
		`soul_refreshes_total{result="reused"}`:        1,
		// A mood created and its POST replayed, the list and its burst, the mood read,
		// changed, exported, deleted and read again, the logout and
		// DELETE /api/me.
		`soul_rate_limit_decisions_total{decision="allowed",policy="default",storage="redis"}`: 10 + burst,
		`soul_rate_limit_decisions_total{decision="allowed",policy="export",storage="redis"}`:  1,
		// soul_auth's sign-in limits: three code requests, four code
		// checks (one wrong), two refreshes (one a reuse).
		`soul_rate_limit_decisions_total{decision="allowed",policy="otp_request",storage="redis"}`:  3,
		`soul_rate_limit_decisions_total{decision="allowed",policy="otp_send",storage="redis"}`:     3,
		`soul_rate_limit_decisions_total{decision="allowed",policy="otp_send_day",storage="redis"}`: 3,
		`soul_rate_limit_decisions_total{decision="allowed",policy="otp_verify",storage="redis"}`:   4,
		`soul_rate_limit_decisions_total{decision="allowed",policy="otp_attempts",storage="redis"}`: 4,
		`soul_rate_limit_decisions_total{decision="allowed",policy="refresh",storage="redis"}`:      2,
		`soul_rate_limit_fallbacks_total`: 0,
	} {
		if got := sample(page, series) - sample(before, series); got != want {
			t.Errorf("%s grew by %v in the flow, want %v", series, got, want)
		}
	}
	// The flow's requests carried access tokens: the verified ones are
	// remembered, and the gauge says how many.
	if n := sample(page, "soul_access_token_cache_entries"); n < 1 {
		t.Errorf("soul_access_token_cache_entries %v after a flow of signed-in requests", n)
	}
	for _, want := range []string{`soul_health_up{dependency="database"} 1`, `soul_health_up{dependency="redis"} 1`} {
		if !strings.Contains(page, want+"\n") {
			t.Errorf("the metrics page lacks %q", want)
		}
	}
	rules, err := os.ReadFile(filepath.Join(soultest.RepoRoot(), "ops", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\b(?:soul|caddy)_[a-z_]*[a-z]\b`).FindAllString(string(rules), -1) {
		names[m] = true
	}
	if len(names) < 5 {
		t.Fatalf("found only %v in alerts.yml", names)
	}
	for name := range names {
		if !regexp.MustCompile(`(?m)^` + name + `[{ ]`).MatchString(page) {
			t.Errorf("alerts.yml uses %s, which /metrics does not export", name)
		}
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`\+?\d{9,}`),
		regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-`),
		regexp.MustCompile(`"/api/[^"]*"`),
	} {
		for _, line := range strings.Split(page, "\n") {
			if strings.HasPrefix(line, "soul_") && bad.MatchString(line) {
				t.Errorf("a label looks unbounded: %s", line)
			}
		}
	}
	var excerpt []string
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "soul_") || strings.HasPrefix(line, "caddy_http_request_duration_seconds_count") {
			excerpt = append(excerpt, line)
		}
	}
	t.Logf("metrics after the flow (excerpt):\n%s", strings.Join(excerpt, "\n"))
	if out := os.Getenv("SOUL_METRICS_EXCERPT"); out != "" {
		_ = os.WriteFile(out, []byte(strings.Join(excerpt, "\n")+"\n"), 0o644)
	}
}

// sample is the value of one series on a metrics page; 0 when absent.
func sample(page, series string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// LOG_LEVEL applies to the access log too: the production Caddyfile logs a
// request at INFO, and a WARN or ERROR level silences those lines (5xx,
// logged at ERROR, would stay).
func TestLogLevelAppliesToTheAccessLog(t *testing.T) {
	for _, tc := range []struct {
		level  string
		logged bool
	}{{"INFO", true}, {"WARN", false}, {"ERROR", false}} {
		t.Run(tc.level, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			// Only where the logs go changes; their level lines stay.
			cfg := logsTo(t, logFile, "")
			s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Caddyfile: cfg,
				Env: map[string]string{"LOG_LEVEL": tc.level}})
			c := &flowClient{t: t, s: s, ip: "203.0.113.78"}
			c.do(http.MethodGet, "/api/openapi.json", nil, http.StatusOK)
			c.do(http.MethodGet, "/api/nope", nil, http.StatusNotFound)

			logs, err := os.ReadFile(logFile)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			var lines []string
			infos := 0
			for _, line := range strings.Split(string(logs), "\n") {
				if strings.Contains(line, `"logger":"http.log.access`) {
					lines = append(lines, line)
				}
				if strings.Contains(line, `"level":"info"`) {
					infos++
				}
			}
			// Caddy's own startup lines are at INFO: they show the level
			// reached the rest of the logs as well.
			if tc.logged != (infos > 0) {
				t.Errorf("LOG_LEVEL=%s: %d lines at info in the logs", tc.level, infos)
			}
			switch {
			case tc.logged && (len(lines) != 2 || !strings.Contains(lines[0], `"uri":"/api/openapi.json"`) || !strings.Contains(lines[0], `"level":"info"`)):
				t.Errorf("LOG_LEVEL=%s: access log %q, want the two requests at info", tc.level, lines)
			case !tc.logged && len(lines) != 0:
				t.Errorf("LOG_LEVEL=%s: access log %q, want none", tc.level, lines)
			}
		})
	}
}
