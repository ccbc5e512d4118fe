package contract_test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/soulapp/soul/api"
)

// Every response header of the document says whether it is always sent,
// and one that may be absent is declared where it is used: openapi-typescript
// types a header given by $ref as always present, whatever the referenced
// header's required says, so a $ref is only for a required header.
func TestResponseHeadersSayWhetherTheyAreSent(t *testing.T) {
	type header struct {
		Ref         string `json:"$ref"`
		Required    *bool  `json:"required"`
		Description string `json:"description"`
	}
	type response struct {
		Ref     string            `json:"$ref"`
		Headers map[string]header `json:"headers"`
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Responses map[string]response `json:"responses"`
			Headers   map[string]header   `json:"headers"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}

	responses := map[string]response{}
	for name, r := range doc.Components.Responses {
		responses["components/responses/"+name] = r
	}
	for path, item := range doc.Paths {
		for method, raw := range item {
			var op struct {
				Responses map[string]response `json:"responses"`
			}
			if method == "parameters" || json.Unmarshal(raw, &op) != nil {
				continue
			}
			for status, r := range op.Responses {
				responses[strings.ToUpper(method)+" "+path+" "+status] = r
			}
		}
	}
	if len(responses) < 20 {
		t.Fatalf("found only %d responses", len(responses))
	}

	var problems []string
	for where, r := range responses {
		for name, h := range r.Headers {
			if h.Ref != "" {
				target, ok := doc.Components.Headers[strings.TrimPrefix(h.Ref, "#/components/headers/")]
				switch {
				case !ok:
					problems = append(problems, where+": "+name+" refers to "+h.Ref+", which is not there")
				case target.Required == nil || !*target.Required:
					problems = append(problems, where+": "+name+" refers to "+h.Ref+", which is not required; declare it here with required false")
				}
				continue
			}
			if h.Required == nil {
				problems = append(problems, where+": "+name+" does not say whether it is required")
			}
			if h.Description == "" {
				problems = append(problems, where+": "+name+" has no description")
			}
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}
