package mood

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/problem"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fieldsOf returns the field names of a 422 problem, failing on any other
// error.
func fieldsOf(t *testing.T, err error, wantStatus int) []string {
	t.Helper()
	var pe *problem.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a problem", err)
	}
	if pe.Status != wantStatus {
		t.Fatalf("status %d, want %d (%v)", pe.Status, wantStatus, pe)
	}
	var names []string
	for _, f := range pe.Fields {
		names = append(names, f.Field)
	}
	return names
}

func TestDecodeNew(t *testing.T) {
	ok := []struct {
		name string
		body string
		want New
	}{
		{"score only", `{"score":5}`, New{Score: 5, Tags: []string{}}},
		{"tags normalised", `{"score":1,"tags":[" Work ","work","SLEEP","sleep "]}`, New{Score: 1, Tags: []string{"work", "sleep"}}},
		{"limits", `{"score":10,"label":"` + strings.Repeat("é", MaxLabel) + `","tags":["` + strings.Repeat("a", MaxTagLength) + `"]}`,
			New{Score: 10, Label: ptr(strings.Repeat("é", MaxLabel)), Tags: []string{strings.Repeat("a", MaxTagLength)}}},
		{"null label is none", `{"score":3,"label":null,"note":"n"}`, New{Score: 3, Note: ptr("n"), Tags: []string{}}},
		{"recorded_at within slack", `{"score":2,"recorded_at":"2026-03-01T12:04:59.1234567+00:00"}`,
			New{Score: 2, Tags: []string{}, RecordedAt: ptr(time.Date(2026, 3, 1, 12, 4, 59, 123456000, time.UTC))}},
		{"eleven tags merging to ten", `{"score":2,"tags":["a","b","c","d","e","f","g","h","i","j","J"]}`,
			New{Score: 2, Tags: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}}},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeNew([]byte(c.body), testNow)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}

	bad := []struct {
		name   string
		body   string
		status int
		fields []string
	}{
		{"no score", `{}`, 422, []string{"score"}},
		{"score 0", `{"score":0}`, 422, []string{"score"}},
		{"score 11", `{"score":11}`, 422, []string{"score"}},
		{"label 33", `{"score":5,"label":"` + strings.Repeat("x", 33) + `"}`, 422, []string{"label"}},
		{"note 2001", `{"score":5,"note":"` + strings.Repeat("x", 2001) + `"}`, 422, []string{"note"}},
		{"NUL in note", `{"score":5,"note":"a\u0000b"}`, 422, []string{"note"}},
		{"11 tags", `{"score":5,"tags":["a","b","c","d","e","f","g","h","i","j","k"]}`, 422, []string{"tags"}},
		{"blank tag", `{"score":5,"tags":["ok","  "]}`, 422, []string{"tags[1]"}},
		{"long tag", `{"score":5,"tags":["` + strings.Repeat("t", 25) + `"]}`, 422, []string{"tags[0]"}},
		{"an hour ahead", `{"score":5,"recorded_at":"2026-03-01T13:00:00Z"}`, 422, []string{"recorded_at"}},
		{"not a time", `{"score":5,"recorded_at":"yesterday"}`, 422, []string{"recorded_at"}},
		{"before 1970", `{"score":5,"recorded_at":"1969-12-31T23:59:59Z"}`, 422, []string{"recorded_at"}},
		{"several", `{"score":0,"label":"` + strings.Repeat("x", 33) + `"}`, 422, []string{"score", "label"}},
		{"unknown field", `{"score":5,"mood":"great"}`, 400, nil},
		{"wrong type", `{"score":"5"}`, 400, nil},
		{"fraction", `{"score":5.5}`, 400, nil},
		{"array", `[]`, 400, nil},
		{"trailing data", `{"score":5} {}`, 400, nil},
		{"empty", ``, 400, nil},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeNew([]byte(c.body), testNow)
			if got := fieldsOf(t, err, c.status); !reflect.DeepEqual(got, c.fields) {
				t.Errorf("fields %v, want %v", got, c.fields)
			}
		})
	}
}

func TestDecodePatch(t *testing.T) {
	p, err := DecodePatch([]byte(`{"label":null,"note":"better","tags":["A"]}`), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if p.Score.Set || p.RecordedAt.Set {
		t.Errorf("absent members set: %+v", p)
	}
	if !p.Label.Set || !p.Label.Null {
		t.Errorf("label null not seen: %+v", p.Label)
	}
	if !p.Note.Set || p.Note.Null || p.Note.Value != "better" {
		t.Errorf("note: %+v", p.Note)
	}
	if !reflect.DeepEqual(p.Tags.Value, []string{"a"}) {
		t.Errorf("tags: %+v", p.Tags)
	}

	empty, err := DecodePatch([]byte(`{}`), testNow)
	if err != nil || !empty.Empty() {
		t.Errorf("{} = %+v, %v; want an empty patch", empty, err)
	}

	for body, fields := range map[string][]string{
		`{"score":null}`:                              {"score"},
		`{"score":0}`:                                 {"score"},
		`{"tags":null}`:                               {"tags"},
		`{"recorded_at":null}`:                        {"recorded_at"},
		`{"recorded_at":"2026-03-01T13:00:00Z"}`:      {"recorded_at"},
		`{"label":"` + strings.Repeat("x", 33) + `"}`: {"label"},
	} {
		_, err := DecodePatch([]byte(body), testNow)
		if got := fieldsOf(t, err, http.StatusUnprocessableEntity); !reflect.DeepEqual(got, fields) {
			t.Errorf("%s: fields %v, want %v", body, got, fields)
		}
	}
	if _, err := DecodePatch([]byte(`{"score":"x"}`), testNow); fieldsOf(t, err, http.StatusBadRequest) != nil {
		t.Error("a wrong type has field errors")
	}
}

func TestHashTellsRequestsApart(t *testing.T) {
	decode := func(body string) New {
		n, err := DecodeNew([]byte(body), testNow)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	same := [][2]string{
		{`{"score":5,"tags":["a"]}`, `{ "tags" : ["A "], "score" : 5 }`},
		{`{"score":5}`, `{"score":5,"label":null,"tags":[]}`},
	}
	for _, p := range same {
		if !bytes.Equal(decode(p[0]).Hash(), decode(p[1]).Hash()) {
			t.Errorf("%s and %s hash differently", p[0], p[1])
		}
	}
	differ := [][2]string{
		{`{"score":5}`, `{"score":6}`},
		{`{"score":5}`, `{"score":5,"label":""}`},
		{`{"score":5}`, `{"score":5,"recorded_at":"2026-03-01T11:00:00Z"}`},
		{`{"score":5,"label":"a"}`, `{"score":5,"note":"a"}`},
	}
	for _, p := range differ {
		if bytes.Equal(decode(p[0]).Hash(), decode(p[1]).Hash()) {
			t.Errorf("%s and %s hash alike", p[0], p[1])
		}
	}
}

func ptr[T any](v T) *T { return &v }
