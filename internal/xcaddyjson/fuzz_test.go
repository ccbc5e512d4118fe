package xcaddyjson

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts
// yields build arguments without a line break and survives a round trip
// through encoding/json unchanged.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		validFile,
		`{}`,
		`{"xcaddy": "v0.4.6", "caddy": "v2.11.9", "plugins": []}`,
		`{"xcaddy": "v0.4.6", "caddy": "v2.11.9", "plugins": [{"module": "example.com/plug/v2", "version": "v2.0.0-rc.1"}]}`,
		`{"xcaddy": "v0.4.6", "caddy": "v2.11.9", "caddy": "v2.11.9"}`,
		`{"xcaddy": "v0.4.6", "caddy": "latest"}`,
		`{"xcaddy": "v0.4.6", "caddy": "v2.11.9", "plugins": [{"module": "example.com/p", "replace": "./\u0000"}]}`,
		`{"plugins": [[{"a": [1, {"b": null}]}]]}`,
		`[{"xcaddy": 1}]`,
		`{"xcaddy": "v0.4.6"} trailing`,
		"\xff\xfe{",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned %+v with error %v", cfg, err)
			}
			return
		}
		args, err := cfg.BuildArgs("bin/caddy")
		if err != nil {
			t.Fatalf("BuildArgs of a parsed config: %v", err)
		}
		if want := 4 + 2*len(cfg.Plugins); len(args) != want {
			t.Fatalf("BuildArgs gave %d arguments, want %d: %q", len(args), want, args)
		}
		for _, a := range args {
			if a == "" || strings.ContainsAny(a, "\n\r\x00") {
				t.Fatalf("argument %q is empty or holds a line break or NUL", a)
			}
		}
		again, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		cfg2, err := Parse(again)
		if err != nil {
			t.Fatalf("Parse of re-encoded %s: %v", again, err)
		}
		if len(cfg.Plugins) == 0 {
			// nil and empty plugin lists encode differently; both mean none.
			cfg.Plugins, cfg2.Plugins = nil, nil
		}
		if !reflect.DeepEqual(cfg, cfg2) {
			t.Fatalf("round trip changed %+v into %+v", cfg, cfg2)
		}
	})
}
