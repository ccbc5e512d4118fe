// Package xcaddyjson reads xcaddy.json, the one list of the Caddy version and
// the plugins (with pinned versions) that the SOUL binary is built from, and
// turns it into the arguments of `xcaddy build`. xcaddy itself does not read
// the file: scripts/build.sh and the Dockerfile get the arguments from
// scripts/xcaddyargs, which uses this package.
//
// The file looks like:
//
//	{
//	  "xcaddy": "v0.4.6",
//	  "caddy": "v2.11.9",
//	  "plugins": [
//	    {"module": "github.com/mholt/caddy-ratelimit", "version": "v0.1.0"},
//	    {"module": "github.com/soulapp/soul", "replace": "./"}
//	  ]
//	}
//
// Parsing is strict: unknown or duplicate keys, keys in another case, trailing
// data, and versions that are not exact semantic versions ("latest", "v2",
// branch names) are errors.
package xcaddyjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// FileName is the name of the file at the repository root.
const FileName = "xcaddy.json"

// CaddyModule is the Go module of Caddy v2, whose version the "caddy" field
// pins.
const CaddyModule = "github.com/caddyserver/caddy/v2"

// XCaddyPackage is the main package of xcaddy, installed at the version the
// "xcaddy" field pins.
const XCaddyPackage = "github.com/caddyserver/xcaddy/cmd/xcaddy"

// maxFileSize bounds what Load reads; the real file is a few hundred bytes.
const maxFileSize = 1 << 20

// Config is the content of xcaddy.json.
type Config struct {
	// XCaddy is the version of xcaddy that builds the binary.
	XCaddy string `json:"xcaddy"`
	// Caddy is the version of CaddyModule to build.
	Caddy string `json:"caddy"`
	// Plugins are the Go modules built in besides Caddy's standard modules,
	// in the order they are passed to xcaddy.
	Plugins []Plugin `json:"plugins"`
}

// Plugin is one Go module that provides Caddy modules. Exactly one of Version
// and Replace is set.
type Plugin struct {
	// Module is the Go module path.
	Module string `json:"module"`
	// Version is the exact version to build with.
	Version string `json:"version,omitempty"`
	// Replace is a local directory, relative to the repository root and
	// starting with "." (e.g. "./"), that provides the module instead.
	Replace string `json:"replace,omitempty"`
}

// LocalVersion is the version a plugin with a local replacement is required
// at in xcaddy's build module: the zero pseudo-version, which the go command
// itself gives replaced modules. With a version in the replacement, `go get`
// takes the module from the directory; without one it first asks the module
// proxy for the module's versions, and a proxy that answers anything but "not
// found" for a module it does not hold (403 Forbidden, for one) fails the
// build.
const LocalVersion = "v0.0.0-00010101000000-000000000000"

// WithArg returns the value of the plugin's `xcaddy build --with` flag:
// module@version, or module@LocalVersion=replacement.
func (p Plugin) WithArg() string {
	if p.Replace != "" {
		return p.Module + "@" + LocalVersion + "=" + p.Replace
	}
	return p.Module + "@" + p.Version
}

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse parses and validates the content of xcaddy.json.
func Parse(data []byte) (*Config, error) {
	if err := checkKeys(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Validate checks every field of c.
func (c *Config) Validate() error {
	if err := exactVersion(c.XCaddy); err != nil {
		return fmt.Errorf("xcaddy: %w", err)
	}
	if err := exactVersion(c.Caddy); err != nil {
		return fmt.Errorf("caddy: %w", err)
	}
	if err := module.Check(CaddyModule, c.Caddy); err != nil {
		return fmt.Errorf("caddy: %q is not a version of %s", c.Caddy, CaddyModule)
	}
	seen := make(map[string]bool, len(c.Plugins))
	for i, p := range c.Plugins {
		if err := p.validate(); err != nil {
			return fmt.Errorf("plugins[%d]: %w", i, err)
		}
		if seen[p.Module] {
			return fmt.Errorf("plugins[%d]: %s is listed twice", i, p.Module)
		}
		seen[p.Module] = true
	}
	return nil
}

func (p Plugin) validate() error {
	if p.Module == "" {
		return errors.New("module is required")
	}
	if err := module.CheckPath(p.Module); err != nil {
		return fmt.Errorf("module: %w", err)
	}
	if p.Module == CaddyModule || strings.HasPrefix(p.Module, "github.com/caddyserver/caddy/") ||
		p.Module == "github.com/caddyserver/caddy" {
		return fmt.Errorf("module: %s is Caddy itself; its version is the \"caddy\" field", p.Module)
	}
	switch {
	case p.Version == "" && p.Replace == "":
		return fmt.Errorf("%s: one of version and replace is required", p.Module)
	case p.Version != "" && p.Replace != "":
		return fmt.Errorf("%s: version and replace are exclusive", p.Module)
	case p.Version != "":
		if err := exactVersion(p.Version); err != nil {
			return fmt.Errorf("%s: version: %w", p.Module, err)
		}
		if err := module.Check(p.Module, p.Version); err != nil {
			return fmt.Errorf("%s: version: %w", p.Module, err)
		}
	default:
		if err := localDir(p.Replace); err != nil {
			return fmt.Errorf("%s: replace: %w", p.Module, err)
		}
	}
	return nil
}

// BuildArgs returns the arguments of xcaddy for a build into output:
//
//	build <caddy> --output <output> --with <plugin> ...
//
// No argument holds a newline, so they can be printed one per line.
func (c *Config) BuildArgs(output string) ([]string, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch {
	case output == "":
		return nil, errors.New("output path is required")
	case strings.HasPrefix(output, "-"):
		return nil, fmt.Errorf("output path %q starts with '-'", output)
	case hasControl(output):
		return nil, fmt.Errorf("output path %q holds a control character", output)
	}
	args := make([]string, 0, 4+2*len(c.Plugins))
	args = append(args, "build", c.Caddy, "--output", output)
	for _, p := range c.Plugins {
		args = append(args, "--with", p.WithArg())
	}
	return args, nil
}

// exactVersion accepts a full semantic version with its "v" (v1.2.3, or a
// pre-release such as v1.2.3-rc.1) and nothing that a module proxy would
// resolve at build time: "latest", "v1", "v1.2", branch names, hashes, or
// build metadata.
func exactVersion(v string) error {
	if v == "" {
		return errors.New("version is required")
	}
	if !semver.IsValid(v) || semver.Canonical(v) != v {
		return fmt.Errorf("%q is not an exact version such as v1.2.3", v)
	}
	return nil
}

// localDir accepts a relative directory that xcaddy treats as a local
// replacement: ".", "..", or a path starting with "./" or "../".
func localDir(dir string) error {
	if dir != "." && dir != ".." && !strings.HasPrefix(dir, "./") && !strings.HasPrefix(dir, "../") {
		return fmt.Errorf("%q is not a relative directory starting with \".\"", dir)
	}
	if hasControl(dir) {
		return fmt.Errorf("%q holds a control character", dir)
	}
	if strings.ContainsAny(dir, "=@") {
		return fmt.Errorf("%q holds '=' or '@'", dir)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0 || strings.ContainsRune(s, unicode.ReplacementChar)
}

// schema is the shape of xcaddy.json for checkKeys: the keys an object may
// hold and the shape of each value. A nil *schema is a value that is not
// checked further (the struct decoding checks its type).
type schema struct {
	fields map[string]*schema
	elem   *schema
}

var fileSchema = &schema{fields: map[string]*schema{
	"xcaddy": nil,
	"caddy":  nil,
	"plugins": {elem: &schema{fields: map[string]*schema{
		"module":  nil,
		"version": nil,
		"replace": nil,
	}}},
}}

// checkKeys walks the JSON document and rejects what encoding/json lets
// through: duplicate keys (the last one would silently win), keys that only
// match a field when case is ignored, and anything after the top-level value.
func checkKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	first, err := dec.Token()
	if err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if first != json.Delim('{') {
		return errors.New("invalid JSON: the top-level value must be an object")
	}
	if err := walk(dec, first, fileSchema, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: data after the top-level object")
	}
	return nil
}

// walk reads the rest of the value that starts with tok.
func walk(dec *json.Decoder, tok json.Token, s *schema, where string) error {
	switch tok {
	case json.Delim('{'):
		seen := make(map[string]bool)
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return fmt.Errorf("invalid JSON: %w", err)
			}
			key, ok := kt.(string)
			if !ok {
				return fmt.Errorf("invalid JSON: object key %v", kt)
			}
			at := key
			if where != "" {
				at = where + "." + key
			}
			if seen[key] {
				return fmt.Errorf("duplicate key %q", at)
			}
			seen[key] = true
			var child *schema
			if s != nil {
				var known bool
				child, known = s.fields[key]
				if !known {
					return fmt.Errorf("unknown key %q", at)
				}
			}
			vt, err := dec.Token()
			if err != nil {
				return fmt.Errorf("invalid JSON: %w", err)
			}
			if err := walk(dec, vt, child, at); err != nil {
				return err
			}
		}
	case json.Delim('['):
		var elem *schema
		if s != nil {
			elem = s.elem
		}
		for i := 0; dec.More(); i++ {
			vt, err := dec.Token()
			if err != nil {
				return fmt.Errorf("invalid JSON: %w", err)
			}
			if err := walk(dec, vt, elem, fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	// The closing delimiter; dec.Token checks that it matches.
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return nil
}
