package xcaddyjson

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const validFile = `{
  "xcaddy": "v0.4.6",
  "caddy": "v2.11.9",
  "plugins": [
    {"module": "github.com/mholt/caddy-ratelimit", "version": "v0.1.0"},
    {"module": "github.com/soulapp/soul", "replace": "./"}
  ]
}
`

func TestParse(t *testing.T) {
	withPlugin := func(plugin string) string {
		return `{"xcaddy": "v0.4.6", "caddy": "v2.11.9", "plugins": [` + plugin + `]}`
	}
	tests := []struct {
		name    string
		in      string
		want    *Config
		wantErr string // substring of the error; "" for success
	}{
		{
			name: "the file",
			in:   validFile,
			want: &Config{XCaddy: "v0.4.6", Caddy: "v2.11.9", Plugins: []Plugin{
				{Module: "github.com/mholt/caddy-ratelimit", Version: "v0.1.0"},
				{Module: "github.com/soulapp/soul", Replace: "./"},
			}},
		},
		{
			name: "no plugins",
			in:   `{"xcaddy": "v0.4.6", "caddy": "v2.11.9", "plugins": []}`,
			want: &Config{XCaddy: "v0.4.6", Caddy: "v2.11.9", Plugins: []Plugin{}},
		},
		{
			name: "plugins left out",
			in:   `{"xcaddy": "v0.4.6", "caddy": "v2.11.9"}`,
			want: &Config{XCaddy: "v0.4.6", Caddy: "v2.11.9"},
		},
		{
			name: "pre-release and major-version module",
			in:   `{"xcaddy": "v0.4.6", "caddy": "v2.12.0-beta.1", "plugins": [{"module": "example.com/plug/v3", "version": "v3.1.0-rc.2"}]}`,
			want: &Config{XCaddy: "v0.4.6", Caddy: "v2.12.0-beta.1", Plugins: []Plugin{
				{Module: "example.com/plug/v3", Version: "v3.1.0-rc.2"},
			}},
		},
		{
			name: "replace to a parent directory",
			in:   withPlugin(`{"module": "example.com/plug", "replace": "../plug"}`),
			want: &Config{XCaddy: "v0.4.6", Caddy: "v2.11.9", Plugins: []Plugin{
				{Module: "example.com/plug", Replace: "../plug"},
			}},
		},

		// JSON shape.
		{name: "empty", in: ``, wantErr: "invalid JSON"},
		{name: "null", in: `null`, wantErr: "must be an object"},
		{name: "array", in: `[]`, wantErr: "must be an object"},
		{name: "truncated", in: `{"xcaddy": "v0.4.6"`, wantErr: "invalid JSON"},
		{name: "second object", in: `{"xcaddy": "v0.4.6", "caddy": "v2.11.9"} {}`, wantErr: "data after"},
		{name: "trailing garbage", in: `{"xcaddy": "v0.4.6", "caddy": "v2.11.9"} x`, wantErr: "data after"},
		{name: "unknown key", in: `{"xcaddy": "v0.4.6", "caddy": "v2.11.9", "go": "1.26"}`, wantErr: `unknown key "go"`},
		{name: "key in another case", in: `{"xcaddy": "v0.4.6", "Caddy": "v2.11.9"}`, wantErr: `unknown key "Caddy"`},
		{name: "duplicate key", in: `{"xcaddy": "v0.4.6", "caddy": "v2.11.9", "caddy": "v2.10.0"}`, wantErr: `duplicate key "caddy"`},
		{name: "unknown plugin key", in: withPlugin(`{"module": "example.com/plug", "version": "v1.0.0", "sum": "h1:x"}`), wantErr: `unknown key "plugins[0].sum"`},
		{name: "duplicate plugin key", in: withPlugin(`{"module": "example.com/plug", "version": "v1.0.0", "version": "v1.0.1"}`), wantErr: `duplicate key "plugins[0].version"`},
		{name: "version is a number", in: `{"xcaddy": "v0.4.6", "caddy": 2}`, wantErr: "invalid JSON"},
		{name: "plugins is an object", in: `{"xcaddy": "v0.4.6", "caddy": "v2.11.9", "plugins": {"module": "example.com/plug"}}`, wantErr: `unknown key "plugins.module"`},
		{name: "plugin is a string", in: withPlugin(`"example.com/plug@v1.0.0"`), wantErr: "invalid JSON"},

		// Versions.
		{name: "xcaddy missing", in: `{"caddy": "v2.11.9"}`, wantErr: "xcaddy: version is required"},
		{name: "caddy missing", in: `{"xcaddy": "v0.4.6"}`, wantErr: "caddy: version is required"},
		{name: "caddy null", in: `{"xcaddy": "v0.4.6", "caddy": null}`, wantErr: "caddy: version is required"},
		{name: "caddy latest", in: `{"xcaddy": "v0.4.6", "caddy": "latest"}`, wantErr: "not an exact version"},
		{name: "caddy major only", in: `{"xcaddy": "v0.4.6", "caddy": "v2"}`, wantErr: "not an exact version"},
		{name: "caddy minor only", in: `{"xcaddy": "v0.4.6", "caddy": "v2.11"}`, wantErr: "not an exact version"},
		{name: "caddy without v", in: `{"xcaddy": "v0.4.6", "caddy": "2.11.9"}`, wantErr: "not an exact version"},
		{name: "caddy build metadata", in: `{"xcaddy": "v0.4.6", "caddy": "v2.11.9+local"}`, wantErr: "not an exact version"},
		{name: "caddy branch", in: `{"xcaddy": "v0.4.6", "caddy": "master"}`, wantErr: "not an exact version"},
		{name: "caddy v1", in: `{"xcaddy": "v0.4.6", "caddy": "v1.0.4"}`, wantErr: "not a version of github.com/caddyserver/caddy/v2"},
		{name: "caddy v3", in: `{"xcaddy": "v0.4.6", "caddy": "v3.0.0"}`, wantErr: "not a version of github.com/caddyserver/caddy/v2"},
		{name: "xcaddy latest", in: `{"xcaddy": "latest", "caddy": "v2.11.9"}`, wantErr: "xcaddy: \"latest\" is not an exact version"},
		{name: "plugin latest", in: withPlugin(`{"module": "example.com/plug", "version": "latest"}`), wantErr: "not an exact version"},
		{name: "plugin commit", in: withPlugin(`{"module": "example.com/plug", "version": "4297260"}`), wantErr: "not an exact version"},
		{name: "plugin major mismatch", in: withPlugin(`{"module": "example.com/plug/v2", "version": "v1.0.0"}`), wantErr: "plugins[0]: example.com/plug/v2: version"},
		{name: "plugin v2 without suffix", in: withPlugin(`{"module": "example.com/plug", "version": "v2.0.0"}`), wantErr: "plugins[0]: example.com/plug: version"},

		// Plugins.
		{name: "module missing", in: withPlugin(`{"version": "v1.0.0"}`), wantErr: "module is required"},
		{name: "module not a path", in: withPlugin(`{"module": "not a module", "version": "v1.0.0"}`), wantErr: "plugins[0]: module:"},
		{name: "module with version", in: withPlugin(`{"module": "example.com/plug@v1.0.0", "version": "v1.0.0"}`), wantErr: "plugins[0]: module:"},
		{name: "module is caddy", in: withPlugin(`{"module": "github.com/caddyserver/caddy/v2", "version": "v2.11.9"}`), wantErr: "is Caddy itself"},
		{name: "neither version nor replace", in: withPlugin(`{"module": "example.com/plug"}`), wantErr: "one of version and replace is required"},
		{name: "version and replace", in: withPlugin(`{"module": "example.com/plug", "version": "v1.0.0", "replace": "./"}`), wantErr: "exclusive"},
		{name: "listed twice", in: withPlugin(`{"module": "example.com/plug", "version": "v1.0.0"}, {"module": "example.com/plug", "version": "v1.0.1"}`), wantErr: "plugins[1]: example.com/plug is listed twice"},
		{name: "replace absolute", in: withPlugin(`{"module": "example.com/plug", "replace": "/src/plug"}`), wantErr: "not a relative directory"},
		{name: "replace bare name", in: withPlugin(`{"module": "example.com/plug", "replace": "plug"}`), wantErr: "not a relative directory"},
		{name: "replace module", in: withPlugin(`{"module": "example.com/plug", "replace": "example.com/fork@v1.0.0"}`), wantErr: "not a relative directory"},
		{name: "replace with newline", in: withPlugin(`{"module": "example.com/plug", "replace": "./a\nb"}`), wantErr: "control character"},
		{name: "replace with equals", in: withPlugin(`{"module": "example.com/plug", "replace": "./a=b"}`), wantErr: "holds '=' or '@'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse succeeded with %+v, want an error holding %q", got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q does not hold %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBuildArgs(t *testing.T) {
	cfg, err := Parse([]byte(validFile))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		output  string
		want    []string
		wantErr string
	}{
		{
			name:   "relative output",
			output: "bin/caddy",
			want: []string{
				"build", "v2.11.9",
				"--output", "bin/caddy",
				"--with", "github.com/mholt/caddy-ratelimit@v0.1.0",
				"--with", "github.com/soulapp/soul@v0.0.0-00010101000000-000000000000=./",
			},
		},
		{
			name:   "absolute output with a space",
			output: "/tmp/my build/caddy",
			want: []string{
				"build", "v2.11.9",
				"--output", "/tmp/my build/caddy",
				"--with", "github.com/mholt/caddy-ratelimit@v0.1.0",
				"--with", "github.com/soulapp/soul@v0.0.0-00010101000000-000000000000=./",
			},
		},
		{name: "no output", output: "", wantErr: "output path is required"},
		{name: "output like a flag", output: "--version", wantErr: "starts with '-'"},
		{name: "output with newline", output: "bin/caddy\n--with=x", wantErr: "control character"},
		{name: "output with NUL", output: "bin/caddy\x00", wantErr: "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cfg.BuildArgs(tt.output)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("BuildArgs(%q) = %q, %v; want an error holding %q", tt.output, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("BuildArgs(%q): %v", tt.output, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("BuildArgs(%q) =\n%q\nwant\n%q", tt.output, got, tt.want)
			}
		})
	}
}

func TestBuildArgsRevalidates(t *testing.T) {
	cfg := &Config{XCaddy: "v0.4.6", Caddy: "latest"}
	if _, err := cfg.BuildArgs("bin/caddy"); err == nil {
		t.Fatal("BuildArgs accepted caddy \"latest\"")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(validFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(good); err != nil {
		t.Fatalf("Load: %v", err)
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"xcaddy": "latest"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Load(bad) error %v does not name the file", err)
	}

	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, []byte(`{"xcaddy": "`+strings.Repeat("x", maxFileSize)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load(big) error %v, want a size error", err)
	}

	if _, err := Load(filepath.Join(dir, "missing.json")); !os.IsNotExist(err) {
		t.Fatalf("Load(missing) error %v, want not-exist", err)
	}
}
