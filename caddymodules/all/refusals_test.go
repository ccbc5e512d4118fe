package all_test

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/soulapp/soul/api"
	"github.com/soulapp/soul/internal/contract"
	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/internal/phone"
	"github.com/soulapp/soul/soultest"
)

// exchange is a request to the API and what the server does with it.
type exchange struct {
	name   string
	method string
	// path may hold {mood}, the id of a mood of the signed-in user.
	path string
	body string
	// header holds name/value pairs; a bearer token is added to the routes
	// that need one.
	header []string
	// status is the server's answer; 422 for a refusal, with code and,
	// for validation_failed, the field it names.
	status int
	code   string
	field  string
	// docSays is in the document's reason for refusing it.
	docSays string
}

const moodID = "0b6f5a2e-3c1d-4e8f-9a7b-6c5d4e3f2a1b"

var (
	elevenTags = `["a","b","c","d","e","f","g","h","i","j","k"]`
	tenTags    = `["a","b","c","d","e","f","g","h","i","j"]`
	longTag    = strings.Repeat("t", 25)
	longKey    = strings.Repeat("k", 256)
)

// refused are requests the server refuses with 422 for a rule the document
// states in its schemas; the document must refuse each of them too.
var refused = []exchange{
	{name: "create, 11 tags", method: "POST", path: "/api/moods", body: `{"score":5,"tags":` + elevenTags + `}`, field: "tags", docSays: "/tags"},
	{name: "create, a tag too long", method: "POST", path: "/api/moods", body: `{"score":5,"tags":["` + longTag + `"]}`, field: "tags[0]", docSays: "/tags/0"},
	{name: "create, a tag of white space", method: "POST", path: "/api/moods", body: `{"score":5,"tags":["ok"," \u3000 "]}`, field: "tags[1]", docSays: "/tags/1"},
	{name: "create, a tag with NUL", method: "POST", path: "/api/moods", body: `{"score":5,"tags":["a\u0000b"]}`, field: "tags[0]", docSays: "/tags/0"},
	{name: "create, score 11", method: "POST", path: "/api/moods", body: `{"score":11}`, field: "score", docSays: "/score"},
	{name: "create, score 0", method: "POST", path: "/api/moods", body: `{"score":0}`, field: "score", docSays: "/score"},
	{name: "create, label too long", method: "POST", path: "/api/moods", body: `{"score":5,"label":"` + strings.Repeat("l", 33) + `"}`, field: "label", docSays: "/label"},
	{name: "create, note too long", method: "POST", path: "/api/moods", body: `{"score":5,"note":"` + strings.Repeat("n", 2001) + `"}`, field: "note", docSays: "/note"},
	{name: "create, note with NUL", method: "POST", path: "/api/moods", body: `{"score":5,"note":"a\u0000b"}`, field: "note", docSays: "/note"},
	{name: "create, no score", method: "POST", path: "/api/moods", body: `{"label":"calm"}`, field: "score", docSays: "score"},
	{name: "create, Idempotency-Key too long", method: "POST", path: "/api/moods", body: `{"score":5}`, header: []string{"Idempotency-Key", longKey}, field: "Idempotency-Key", docSays: "Idempotency-Key"},
	{name: "create, Idempotency-Key not ASCII", method: "POST", path: "/api/moods", body: `{"score":5}`, header: []string{"Idempotency-Key", "clé"}, field: "Idempotency-Key", docSays: "Idempotency-Key"},
	{name: "create, Idempotency-Key with a tab", method: "POST", path: "/api/moods", body: `{"score":5}`, header: []string{"Idempotency-Key", "a\tb"}, field: "Idempotency-Key", docSays: "Idempotency-Key"},
	{name: "patch, 11 tags", method: "PATCH", path: "/api/moods/{mood}", body: `{"tags":` + elevenTags + `}`, field: "tags", docSays: "/tags"},
	{name: "patch, a tag too long", method: "PATCH", path: "/api/moods/{mood}", body: `{"tags":["ok","` + longTag + `"]}`, field: "tags[1]", docSays: "/tags/1"},
	{name: "patch, tags null", method: "PATCH", path: "/api/moods/{mood}", body: `{"tags":null}`, field: "tags", docSays: "/tags"},
	{name: "patch, score 11", method: "PATCH", path: "/api/moods/{mood}", body: `{"score":11}`, field: "score", docSays: "/score"},
	{name: "patch, score null", method: "PATCH", path: "/api/moods/{mood}", body: `{"score":null}`, field: "score", docSays: "/score"},
	{name: "code request, no international prefix", method: "POST", path: "/api/auth/otp/request", body: `{"phone":"07400 123456"}`, code: "invalid_phone", docSays: "/phone"},
	{name: "code request, a letter", method: "POST", path: "/api/auth/otp/request", body: `{"phone":"+44 7400 12345x"}`, code: "invalid_phone", docSays: "/phone"},
	{name: "code request, country code 0", method: "POST", path: "/api/auth/otp/request", body: `{"phone":"+0 7400 123456"}`, code: "invalid_phone", docSays: "/phone"},
	{name: "code request, a plus inside", method: "POST", path: "/api/auth/otp/request", body: `{"phone":"44+7400123456"}`, code: "invalid_phone", docSays: "/phone"},
	{name: "code request, phone too long", method: "POST", path: "/api/auth/otp/request", body: `{"phone":"+44 7400 123456` + strings.Repeat(" ", 18) + `0"}`, code: "invalid_phone", docSays: "/phone"},
	{name: "code request, empty phone", method: "POST", path: "/api/auth/otp/request", body: `{"phone":""}`, field: "phone", docSays: "/phone"},
	{name: "sign-in, bad phone", method: "POST", path: "/api/auth/verify-otp", body: `{"phone":"7400 123456","code":"123456"}`, code: "invalid_phone", docSays: "/phone"},
	{name: "sign-in, 5 digits", method: "POST", path: "/api/auth/verify-otp", body: `{"phone":"+447400123456","code":"12345"}`, field: "code", docSays: "/code"},
	{name: "sign-in, not digits", method: "POST", path: "/api/auth/verify-otp", body: `{"phone":"+447400123456","code":"12345a"}`, field: "code", docSays: "/code"},
	{name: "refresh, empty token", method: "POST", path: "/api/auth/refresh", body: `{"refresh_token":""}`, field: "refresh_token", docSays: "/refresh_token"},
	{name: "summary, no from", method: "GET", path: "/api/moods/summary?to=2026-02-01T00:00:00Z", field: "from", docSays: `"from"`},
	{name: "summary, bucket year", method: "GET", path: "/api/moods/summary?" + summaryRange + "&bucket=year", field: "bucket", docSays: `"bucket"`},
	{name: "summary, tz a path", method: "GET", path: "/api/moods/summary?" + summaryRange + "&tz=../UTC", field: "tz", docSays: `"tz"`},
	{name: "summary, tz too long", method: "GET", path: "/api/moods/summary?" + summaryRange + "&tz=" + strings.Repeat("A", 65), field: "tz", docSays: `"tz"`},
}

// accepted are requests near those limits that the server accepts; the
// document must accept them too.
var accepted = []exchange{
	{name: "create, 10 tags", method: "POST", path: "/api/moods", body: `{"score":5,"tags":` + tenTags + `}`, status: 201},
	{name: "create, tags trimmed to 24", method: "POST", path: "/api/moods",
		body: `{"score":1,"tags":["  ` + strings.Repeat("t", 24) + `\t","\u00a0Sun\u3000","a b"]}`, status: 201},
	{name: "create, longest label and note", method: "POST", path: "/api/moods",
		body: `{"score":10,"label":"` + strings.Repeat("é", 32) + `","note":"` + strings.Repeat("n", 2000) + `"}`, status: 201},
	{name: "create, Idempotency-Key of 255 with spaces inside", method: "POST", path: "/api/moods", body: `{"score":5}`,
		header: []string{"Idempotency-Key", "a " + strings.Repeat("~", 252) + "!"}, status: 201},
	{name: "patch, tags trimmed", method: "PATCH", path: "/api/moods/{mood}", body: `{"tags":[" Walk "],"label":null}`, status: 200},
	{name: "code request, 00 and formatting", method: "POST", path: "/api/auth/otp/request", body: `{"phone":" 0044 (7400) 100-901 "}`, status: 200},
	{name: "code request, dots", method: "POST", path: "/api/auth/otp/request", body: `{"phone":"+44.7400.100902"}`, status: 200},
	{name: "summary, a zone with + and digits", method: "GET", path: "/api/moods/summary?" + summaryRange + "&tz=Etc/GMT%2B5&bucket=month", status: 200},
	{name: "summary, three levels", method: "GET", path: "/api/moods/summary?" + summaryRange + "&tz=America/Argentina/Buenos_Aires", status: 200},
}

// summaryRange is a valid range of GET /api/moods/summary.
const summaryRange = "from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"

// request builds an exchange's request to base; token, when set, is the
// bearer of the routes that need one.
func (e exchange) request(t testing.TB, base, mood, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(e.method, base+strings.ReplaceAll(e.path, "{mood}", mood), strings.NewReader(e.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if strings.HasPrefix(e.path, "/api/moods") {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(e.header); i += 2 {
		req.Header.Set(e.header[i], e.header[i+1])
	}
	return req
}

func checker(t testing.TB) *contract.Checker {
	t.Helper()
	c, err := contract.New(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The document refuses each request the server refuses for a rule it
// can state, for that rule, and accepts the requests near the limits that
// the server accepts.
func TestDocumentRefusesWhatTheServerRefuses(t *testing.T) {
	c := checker(t)
	for _, e := range refused {
		err := c.ValidateRequest(e.request(t, "http://soul.test", moodID, "x"), []byte(e.body))
		switch {
		case err == nil:
			t.Errorf("%s: the document accepts it", e.name)
		case !strings.Contains(err.Error(), e.docSays):
			t.Errorf("%s: the document refuses it, but not for %s: %v", e.name, e.docSays, err)
		}
	}
	for _, e := range accepted {
		if err := c.ValidateRequest(e.request(t, "http://soul.test", moodID, "x"), []byte(e.body)); err != nil {
			t.Errorf("%s: the document refuses it: %v", e.name, err)
		}
	}
}

// The server answers each of those requests as the tables say, through the
// checking client: a success the document refused would fail too. Run
// with -short to leave the server out.
func TestServerRefusesWhatTheDocumentRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server")
	}
	s := soultest.Start(t, soultest.Options{Database: soultest.SQLite})
	token := signIn(t, s, "+447400100900")
	created := s.Do(http.MethodPost, "/api/moods", `{"score":5}`, "Authorization", "Bearer "+token)
	soultest.WantStatus(t, created, http.StatusCreated)
	var m struct {
		ID string `json:"id"`
	}
	created.JSON(t, &m)

	for _, e := range append(append([]exchange{}, refused...), accepted...) {
		t.Run(e.name, func(t *testing.T) {
			resp, err := s.Client.Do(e.request(t, s.BaseURL, m.ID, token))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p struct {
				Code   string `json:"code"`
				Errors []struct {
					Field string `json:"field"`
				} `json:"errors"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&p)
			want := e.status
			if want == 0 {
				want = http.StatusUnprocessableEntity
			}
			if resp.StatusCode != want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, p.Code, want)
			}
			if want != http.StatusUnprocessableEntity {
				return
			}
			code := e.code
			if code == "" {
				code = "validation_failed"
			}
			if p.Code != code {
				t.Fatalf("code %q, want %q", p.Code, code)
			}
			if e.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != e.field) {
				t.Errorf("errors %+v, want one for %s", p.Errors, e.field)
			}
		})
	}
}

func signIn(t testing.TB, s *soultest.Server, phone string) string {
	t.Helper()
	resp := s.Do(http.MethodPost, "/api/auth/otp/request", map[string]string{"phone": phone})
	soultest.WantStatus(t, resp, http.StatusOK)
	var sent struct {
		PreviewCode string `json:"preview_code"`
	}
	resp.JSON(t, &sent)
	resp = s.Do(http.MethodPost, "/api/auth/verify-otp", map[string]string{"phone": phone, "code": sent.PreviewCode})
	soultest.WantStatus(t, resp, http.StatusOK)
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	resp.JSON(t, &pair)
	return pair.AccessToken
}

// The tag pattern says exactly what the server's tag rules say, on a
// corpus of strings built from white space (the server trims what Go's
// unicode.IsSpace calls space), NUL and other characters.
func TestTagSchemaAgreesWithTheServer(t *testing.T) {
	c := checker(t)
	pieces := []string{"a", "B", "é", "😀", " ", "\t", "\n", "\u00a0", "\u0085", "\u2003", "\u3000", "\ufeff", "\x00", "-", strings.Repeat("x", 10)}
	r := rand.New(rand.NewPCG(1, 2))
	corpus := []string{"", " ", strings.Repeat("x", 24), strings.Repeat("x", 25), " " + strings.Repeat("😀", 24) + " ", "a\nb", "\u00a0x\u00a0"}
	for range 3000 {
		var b strings.Builder
		for range r.IntN(8) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		corpus = append(corpus, b.String())
	}
	now := time.Now()
	for _, tag := range corpus {
		tags, _ := json.Marshal([]string{tag})
		body := `{"score":5,"tags":` + string(tags) + `}`
		_, serverErr := mood.DecodeNew([]byte(body), now)
		req := exchange{method: "POST", path: "/api/moods", body: body}.request(t, "http://soul.test", moodID, "x")
		docErr := c.ValidateRequest(req, []byte(body))
		if (serverErr == nil) != (docErr == nil) {
			t.Errorf("tag %q: the server says %v, the document %v", tag, serverErr, docErr)
		}
	}
}

// The phone pattern accepts every number the server accepts and refuses
// every input the server refuses for its shape (characters, prefix,
// country code, length). Whether a well-shaped number is valid for its
// country is beyond a pattern; so is the server's length limit in bytes,
// which maxLength counts in characters (they differ only for non-ASCII
// white space around the number).
func TestPhoneSchemaAgreesWithTheServer(t *testing.T) {
	c := checker(t)
	pieces := []string{"+", "00", "0", "1", "4", "7", "9", " ", "(", ")", "-", ".", "\t", "\u00a0", "a", "/", "+44", "7400", "100903", "+1 555", "\u0663"}
	r := rand.New(rand.NewPCG(3, 4))
	corpus := []string{"+447400100903", "0044 7400 100903", " +44 7400 100903\t", "\u00a0+447400100903", "+", "00", "+0", "0", "+44 7400 1009030000000000000000000"}
	for range 4000 {
		var b strings.Builder
		for range r.IntN(9) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		corpus = append(corpus, b.String())
	}
	shape := []string{"too long", "empty", "unexpected character", "missing international prefix", "missing country code"}
	for _, raw := range corpus {
		body, _ := json.Marshal(map[string]string{"phone": raw})
		req := exchange{method: "POST", path: "/api/auth/otp/request", body: string(body)}.request(t, "http://soul.test", "", "")
		docErr := c.ValidateRequest(req, body)
		_, strictErr := phone.Normalize(raw)
		_, looseErr := phone.NormalizeLoose(raw)
		switch {
		case strictErr == nil || looseErr == nil:
			if docErr != nil {
				t.Errorf("phone %q: the server accepts it, the document says %v", raw, docErr)
			}
		case docErr == nil && refusedForShape(looseErr, shape) && !(strings.Contains(looseErr.Error(), "too long") && utf8.RuneCountInString(raw) <= 32):
			t.Errorf("phone %q: the server refuses its shape (%v), the document accepts it", raw, looseErr)
		}
	}
}

func refusedForShape(err error, reasons []string) bool {
	for _, r := range reasons {
		if strings.HasSuffix(err.Error(), r) {
			return true
		}
	}
	return false
}
