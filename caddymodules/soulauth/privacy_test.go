package soulauth_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/rueidis"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// redisDump is every key of the Redis with its value's strings: the
// string value, or the members (and hash fields) of the other types.
func redisDump(t *testing.T, c rueidis.Client) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	cursor := uint64(0)
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Fatalf("SCAN: %v", err)
		}
		for _, k := range e.Elements {
			typ, err := c.Do(ctx, c.B().Type().Key(k).Build()).ToString()
			if err != nil {
				t.Fatalf("TYPE: %v", err)
			}
			var vals []string
			switch typ {
			case "string":
				v, _ := c.Do(ctx, c.B().Get().Key(k).Build()).ToString()
				vals = []string{v}
			case "zset":
				vals, _ = c.Do(ctx, c.B().Zrange().Key(k).Min("0").Max("-1").Build()).AsStrSlice()
			case "set":
				vals, _ = c.Do(ctx, c.B().Smembers().Key(k).Build()).AsStrSlice()
			case "list":
				vals, _ = c.Do(ctx, c.B().Lrange().Key(k).Start(0).Stop(-1).Build()).AsStrSlice()
			case "hash":
				m, _ := c.Do(ctx, c.B().Hgetall().Key(k).Build()).AsStrMap()
				for f, v := range m {
					vals = append(vals, f, v)
				}
			case "none": // expired between SCAN and TYPE
				continue
			default:
				vals = []string{"<" + typ + ">"}
			}
			out[k] = vals
		}
		if e.Cursor == 0 {
			return out
		}
		cursor = e.Cursor
	}
}

// redisMentions lists the keys whose name or value holds any of needles.
func redisMentions(dump map[string][]string, needles ...string) []string {
	var hits []string
	for k, vals := range dump {
		for _, n := range needles {
			if strings.Contains(k, n) {
				hits = append(hits, fmt.Sprintf("key %q names %q", k, n))
			}
			for _, v := range vals {
				if strings.Contains(v, n) {
					hits = append(hits, fmt.Sprintf("a value of %q holds %q", k, n))
				}
			}
		}
	}
	return hits
}

// dbMentions searches every column of every table of the database for
// needles (as text), and lists where it found them.
func dbMentions(t *testing.T, db *bun.DB, needles ...string) []string {
	t.Helper()
	ctx := context.Background()
	type column struct{ Table, Name string }
	var cols []column
	var err error
	if db.Dialect().Name().String() == "pg" {
		err = db.NewRaw(`SELECT table_name AS table, column_name AS name FROM information_schema.columns
			WHERE table_schema = current_schema() ORDER BY 1, 2`).Scan(ctx, &cols)
	} else {
		err = db.NewRaw(`SELECT m.name AS "table", p.name AS name FROM sqlite_master m, pragma_table_info(m.name) p
			WHERE m.type = 'table' ORDER BY 1, 2`).Scan(ctx, &cols)
	}
	if err != nil {
		t.Fatalf("listing columns: %v", err)
	}
	if len(cols) < 10 {
		t.Fatalf("only %d columns found: %v", len(cols), cols)
	}
	var hits []string
	for _, c := range cols {
		for _, n := range needles {
			var found int
			q := fmt.Sprintf(`SELECT count(*) FROM %q WHERE CAST(%q AS text) LIKE ?`, c.Table, c.Name)
			if err := db.NewRaw(q, "%"+n+"%").Scan(ctx, &found); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if found > 0 {
				hits = append(hits, fmt.Sprintf("%s.%s holds %q in %d rows", c.Table, c.Name, n, found))
			}
		}
	}
	return hits
}

// TestDeleteMeLeavesNothing uses an account in every way that leaves a
// trace (codes, a pending code with a wrong try, two sessions, moods, an
// idempotency key, the default and export policies), checks that Redis
// holds nothing of it in clear, restarts the server (the new process has
// seen none of the limiter's rules), deletes the account, and searches
// every table and every Redis key and value for its id and phone, and for
// the hashed keys its limiter entries had.
func TestDeleteMeLeavesNothing(t *testing.T) {
	secret := soultest.RandomHex(32)
	redisURL := testservices.RedisURL(t)
	o := soultest.Options{Database: soultest.Postgres, RedisURL: redisURL, Caddyfile: relaxedCaddyfile(t),
		Env: map[string]string{"SECRET_KEY": secret}}
	s := soultest.Start(t, o)
	db := s.OpenDB(t)
	rdb := testservices.RedisClient(t, redisURL)
	c := newClient(t, s)
	phone := newPhone()
	digits := strings.TrimPrefix(phone, "+")

	code := c.requestCode(phone)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	soultest.WantProblem(t, c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": wrong}), http.StatusUnauthorized, "invalid_code")
	soultest.WantStatus(t, c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": code}), http.StatusOK)
	pair := c.signIn(phone)
	id := pair.User.ID.String()
	bearer := []string{"Authorization", "Bearer " + pair.AccessToken}
	for i := range 3 {
		resp := c.do(http.MethodPost, "/api/moods", map[string]any{"score": i + 1, "note": "private"}, append(bearer, "Idempotency-Key", fmt.Sprint("k", i))...)
		soultest.WantStatus(t, resp, http.StatusCreated)
	}
	soultest.WantStatus(t, c.withToken(http.MethodGet, "/api/moods", pair.AccessToken), http.StatusOK)
	soultest.WantStatus(t, c.withToken(http.MethodGet, soulauth.PathExport, pair.AccessToken), http.StatusOK)
	// A pending code with a wrong try: a challenge row and an attempts entry.
	code = c.requestCode(phone)
	if code == wrong {
		wrong = "222222"
	}
	soultest.WantProblem(t, c.post(soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": wrong}), http.StatusUnauthorized, "invalid_code")

	// Keys of this account's entries, named by the limiter's own function.
	names := soultest.LimiterKeys(t, secret)
	entries := []string{
		names.StorageKey(soulratelimitDefault, auth.UserSubject(id)),
		names.StorageKey("export", auth.UserSubject(id)),
	}
	limits := auth.DefaultLimits()
	for _, r := range limits.Rules() {
		switch r.Subject {
		case auth.SubjectPhone:
			entries = append(entries, names.StorageKey(r.Name, phone))
		case auth.SubjectUser:
			entries = append(entries, names.StorageKey(r.Name, auth.UserSubject(id)))
		}
	}
	dump := redisDump(t, rdb)
	for _, k := range entries {
		if _, ok := dump[k]; !ok {
			t.Fatalf("Redis lacks the entry %s; are the key names right?", k)
		}
	}
	// The entries exist; none of them, and nothing else, names the user.
	for _, hit := range redisMentions(dump, digits, id) {
		t.Errorf("after sign-in: %s", hit)
	}
	// And the search below finds the account while it exists.
	if hits := dbMentions(t, db, id, digits); len(hits) < 5 {
		t.Fatalf("before the deletion the search finds only %v", hits)
	}
	for _, table := range []string{"otp_challenges", "sessions", "moods", "idempotency_keys"} {
		if soultest.Count(t, db, table, "1 = 1") == 0 {
			t.Fatalf("nothing in %s before the deletion: the search would prove nothing", table)
		}
	}

	// A restart: a new process, whose limiter has checked no rule yet.
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	o.DatabaseURL = s.DatabaseURL
	s = soultest.Start(t, o)
	c = &client{t: t, s: s, ip: c.ip}

	soultest.WantStatus(t, c.withToken(http.MethodDelete, soulauth.PathMe, pair.AccessToken), http.StatusNoContent)

	for _, hit := range dbMentions(t, db, id, digits) {
		t.Errorf("after deletion: %s", hit)
	}
	dump = redisDump(t, rdb)
	for _, k := range entries {
		if _, ok := dump[k]; ok {
			t.Errorf("after deletion: Redis still holds %s", k)
		}
	}
	for _, hit := range redisMentions(dump, digits, id) {
		t.Errorf("after deletion: %s", hit)
	}

	// The account is gone: its tokens answer 401, a second deletion too.
	soultest.WantProblem(t, c.withToken(http.MethodDelete, soulauth.PathMe, pair.AccessToken), http.StatusUnauthorized, "invalid_token")
	soultest.WantProblem(t, c.withToken(http.MethodGet, soulauth.PathExport, pair.AccessToken), http.StatusUnauthorized, "invalid_token")
	resp := c.post(soulauth.PathRefresh, map[string]string{"refresh_token": pair.RefreshToken})
	soultest.WantProblem(t, resp, http.StatusUnauthorized, "invalid_refresh_token")
	if bytes.Contains(resp.Body, []byte(digits)) {
		t.Error("the refusal names the phone")
	}
}

// soulratelimitDefault is the Caddyfile's default policy name.
const soulratelimitDefault = "default"

// TestMoodTextNeverLogged writes, edits, lists, exports and gets refused
// moods at DEBUG with a distinctive label, note and tags, and looks for
// that text in everything Caddy logged.
func TestMoodTextNeverLogged(t *testing.T) {
	caddyfile, readLogs := soultest.CaptureLogs(t, relaxedCaddyfile(t))
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, Caddyfile: caddyfile})
	c := newClient(t, s)
	pair := c.signIn(newPhone())
	auth := []string{"Authorization", "Bearer " + pair.AccessToken}

	label, note, tag := "zqxlabel"+soultest.RandomHex(4), "zqxnote "+soultest.RandomHex(8), "zqxtag"+soultest.RandomHex(4)
	secrets := []string{label, note, tag}
	resp := c.do(http.MethodPost, "/api/moods", map[string]any{"score": 3, "label": label, "note": note, "tags": []string{tag}}, auth...)
	soultest.WantStatus(t, resp, http.StatusCreated)
	loc := resp.Header.Get("Location")
	soultest.WantStatus(t, c.do(http.MethodGet, loc, nil, auth...), http.StatusOK)
	note2 := "zqxpatched " + soultest.RandomHex(8)
	secrets = append(secrets, note2)
	soultest.WantStatus(t, c.do(http.MethodPatch, loc, map[string]any{"note": note2}, auth...), http.StatusOK)
	soultest.WantStatus(t, c.do(http.MethodGet, "/api/moods", nil, auth...), http.StatusOK)
	soultest.WantStatus(t, c.do(http.MethodGet, soulauth.PathExport, nil, auth...), http.StatusOK)

	// Refusals that quote nothing back still reach the error log at DEBUG.
	long := "zqxlong" + strings.Repeat("y", 40)
	badTag := "zqxbadtag" + strings.Repeat("z", 30)
	secrets = append(secrets, long, badTag)
	soultest.WantProblem(t, c.do(http.MethodPost, "/api/moods", map[string]any{"score": 3, "label": long}, auth...), http.StatusUnprocessableEntity, "validation_failed")
	soultest.WantProblem(t, c.do(http.MethodPost, "/api/moods", map[string]any{"score": 3, "tags": []string{badTag}}, auth...), http.StatusUnprocessableEntity, "validation_failed")
	soultest.WantProblem(t, c.do(http.MethodPatch, loc, map[string]any{"label": long}, auth...), http.StatusUnprocessableEntity, "validation_failed")
	broken := `{"score": 3, "note": "zqxbroken ` + soultest.RandomHex(4) + `"`
	secrets = append(secrets, strings.TrimPrefix(broken, `{"score": 3, "note": "`))
	soultest.WantProblem(t, c.do(http.MethodPost, "/api/moods", broken, auth...), http.StatusBadRequest, "invalid_json")
	wrongType := "zqxtype" + soultest.RandomHex(4)
	secrets = append(secrets, wrongType)
	soultest.WantProblem(t, c.do(http.MethodPost, "/api/moods", map[string]any{"score": wrongType}, auth...), http.StatusBadRequest, "invalid_json")

	logs := readLogs()
	for _, want := range []string{`"level":"debug"`, "validation_failed", "account exported", "signed in"} {
		if !bytes.Contains(logs, []byte(want)) {
			t.Fatalf("the logs lack %q; is the capture working?\n%s", want, logs)
		}
	}
	for _, sec := range secrets {
		if bytes.Contains(logs, []byte(sec)) {
			t.Errorf("the logs contain mood text %q", sec)
		}
	}
	// A piece of any of them: each starts with a marker word. The bare
	// "zqx" would also match random base64 in the logs (1 in 260,000
	// characters).
	if m := regexp.MustCompile(`zqx(label|note|tag|patched|long|badtag|broken|type)`).Find(logs); m != nil {
		t.Errorf("the logs contain a piece of mood text: %q", m)
	}
}
