package xcaddyjson

// These tests keep the three descriptions of the binary in step: xcaddy.json
// (what `make build` and the Dockerfile build), go.mod with cmd/caddy (what
// `go build ./cmd/caddy` and the in-process tests build), and the Caddy
// modules a built binary actually holds.

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
)

const (
	// envBinary names the binary TestBinaryModules inspects; a relative path
	// is taken from the repository root.
	envBinary = "SOUL_TEST_BINARY"
	// envRequire makes a missing binary a failure instead of a skip (set by
	// `make test`).
	envRequire = "SOUL_TEST_REQUIRE_SERVICES"

	// rootModule is this repository's Go module.
	rootModule = "github.com/soulapp/soul"
	// pluginModule is a third-party plugin, for the parser's examples.
	pluginModule = "github.com/mholt/caddy-ratelimit"
)

// requiredModules are Caddy modules the binary must hold, with the Go module
// each comes from.
var requiredModules = map[string]string{
	"soul":                      rootModule,
	"http.handlers.soul_shield": rootModule,
	// The code providers soul_auth loads: the Caddyfile's, and the local
	// one it falls back to in DEV_MODE.
	"soul.otp_providers.twilio_verify": rootModule,
	"soul.otp_providers.local":         rootModule,
}

// repo is the repository as the tests see it.
type repo struct {
	root   string
	config *Config
	gomod  *modfile.File
}

func loadRepo(t *testing.T) *repo {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modfile.ModulePath(data) == rootModule {
			mf, err := modfile.Parse(filepath.Join(dir, "go.mod"), data, nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(filepath.Join(dir, FileName))
			if err != nil {
				t.Fatal(err)
			}
			return &repo{root: dir, config: cfg, gomod: mf}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod of %s above the working directory", rootModule)
		}
		dir = parent
	}
}

// required returns the version go.mod requires mod at, or "".
func (r *repo) required(mod string) string {
	for _, req := range r.gomod.Require {
		if req.Mod.Path == mod {
			return req.Mod.Version
		}
	}
	return ""
}

// TestFileListsThisModule checks that xcaddy.json builds this repository in,
// from the repository itself.
func TestFileListsThisModule(t *testing.T) {
	r := loadRepo(t)
	for _, p := range r.config.Plugins {
		if p.Module == rootModule {
			if p.Replace != "./" {
				t.Errorf("%s: replace is %q, want \"./\" (the repository root)", rootModule, p.Replace)
			}
			return
		}
	}
	t.Errorf("%s lists no plugin %s", FileName, rootModule)
}

// TestPinsMatchGoMod checks that go.mod requires Caddy and every versioned
// plugin at the version xcaddy.json pins, that every local replacement is the
// module it claims to be, and that go.mod holds nothing that xcaddy's build
// would ignore.
func TestPinsMatchGoMod(t *testing.T) {
	r := loadRepo(t)
	if got := r.required(CaddyModule); got != r.config.Caddy {
		t.Errorf("go.mod requires %s %q; %s pins %s", CaddyModule, got, FileName, r.config.Caddy)
	}
	for _, p := range r.config.Plugins {
		if p.Replace != "" {
			dir := filepath.Join(r.root, filepath.FromSlash(p.Replace))
			data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err != nil {
				t.Errorf("%s: replacement: %v", p.Module, err)
				continue
			}
			if got := modfile.ModulePath(data); got != p.Module {
				t.Errorf("%s: replacement %s holds module %q", p.Module, p.Replace, got)
			}
			continue
		}
		if got := r.required(p.Module); got != p.Version {
			t.Errorf("go.mod requires %s %q; %s pins %s", p.Module, got, FileName, p.Version)
		}
	}
	// In xcaddy's build this module is a dependency, and the go command
	// ignores the replace and exclude directives of dependencies: either
	// would make `go build ./cmd/caddy` and `make build` differ.
	for _, rep := range r.gomod.Replace {
		t.Errorf("go.mod replaces %s: xcaddy's build would not", rep.Old.Path)
	}
	for _, ex := range r.gomod.Exclude {
		t.Errorf("go.mod excludes %s %s: xcaddy's build would not", ex.Mod.Path, ex.Mod.Version)
	}
}

// TestMainImportsMatchPlugins checks that cmd/caddy blank-imports what
// xcaddy's generated main does: Caddy's standard modules and each plugin's
// root package, where a local plugin's root package stands for the packages
// it imports in turn.
func TestMainImportsMatchPlugins(t *testing.T) {
	r := loadRepo(t)
	want := []string{CaddyModule + "/modules/standard"}
	for _, p := range r.config.Plugins {
		if p.Replace == "" {
			want = append(want, p.Module)
			continue
		}
		dir := filepath.Join(r.root, filepath.FromSlash(p.Replace))
		imports := blankImports(t, dir)
		if len(imports) == 0 {
			t.Errorf("%s: the root package in %s blank-imports nothing, so it registers no module", p.Module, p.Replace)
		}
		want = append(want, imports...)
	}
	got := blankImports(t, filepath.Join(r.root, "cmd", "caddy"))
	slices.Sort(want)
	want = slices.Compact(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cmd/caddy blank-imports\n\t%s\nxcaddy's build would import\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// blankImports returns the sorted blank imports of the non-test Go files in
// dir.
func blankImports(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if imp.Name == nil || imp.Name.Name != "_" {
				continue
			}
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// listedModule is one line of `caddy list-modules --packages`.
type listedModule struct {
	ID string
	// Package is the Go module the Caddy module's package belongs to; ""
	// when that is the binary's main module.
	Package string
	// Replace is the replacement of Package, if any.
	Replace string
}

// listing is the parsed output of `caddy list-modules --packages`.
type listing struct {
	Standard, NonStandard, Unknown []listedModule
}

var sectionFooter = regexp.MustCompile(`^\s*(Standard|Non-standard|Unknown) modules: (\d+)$`)

// parseListModules parses what Caddy v2's list-modules prints with
// --packages: lines of "ID [GO-MODULE [=> REPLACEMENT]]", each group closed
// by a footer such as "  Standard modules: 136".
func parseListModules(out string) (*listing, error) {
	var l listing
	var pending []listedModule
	closed := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if m := sectionFooter.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[2])
			if n != len(pending) {
				return nil, fmt.Errorf("%q follows %d modules", strings.TrimSpace(line), len(pending))
			}
			if closed[m[1]] {
				return nil, fmt.Errorf("%s modules listed twice", m[1])
			}
			closed[m[1]] = true
			switch m[1] {
			case "Standard":
				l.Standard = pending
			case "Non-standard":
				l.NonStandard = pending
			default:
				l.Unknown = pending
			}
			pending = nil
			continue
		}
		if strings.Contains(line, "[") {
			return nil, fmt.Errorf("module with an error: %q", line)
		}
		f := strings.Fields(line)
		mod := listedModule{ID: f[0]}
		switch {
		case len(f) == 1:
		case len(f) == 2:
			mod.Package = f[1]
		case len(f) >= 4 && f[2] == "=>":
			mod.Package, mod.Replace = f[1], strings.Join(f[3:], " ")
		default:
			return nil, fmt.Errorf("unexpected line %q", line)
		}
		pending = append(pending, mod)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("%d modules after the last footer (is it a Caddy v2 list-modules --packages output?)", len(pending))
	}
	if !closed["Standard"] {
		return nil, fmt.Errorf("no \"Standard modules\" footer")
	}
	return &l, nil
}

func TestParseListModules(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *listing
		wantErr string
	}{
		{
			name: "go build of cmd/caddy",
			in: `admin.api.load github.com/caddyserver/caddy/v2
http.handlers.file_server github.com/caddyserver/caddy/v2

  Standard modules: 2

http.handlers.rate_limit github.com/mholt/caddy-ratelimit
soul

  Non-standard modules: 2
`,
			want: &listing{
				Standard: []listedModule{
					{ID: "admin.api.load", Package: CaddyModule},
					{ID: "http.handlers.file_server", Package: CaddyModule},
				},
				NonStandard: []listedModule{
					{ID: "http.handlers.rate_limit", Package: pluginModule},
					{ID: "soul"},
				},
			},
		},
		{
			name: "xcaddy build with a local replacement",
			in: `admin.api.load github.com/caddyserver/caddy/v2

  Standard modules: 1

soul github.com/soulapp/soul => /src/soul app

  Non-standard modules: 1
`,
			want: &listing{
				Standard:    []listedModule{{ID: "admin.api.load", Package: CaddyModule}},
				NonStandard: []listedModule{{ID: "soul", Package: rootModule, Replace: "/src/soul app"}},
			},
		},
		{
			name: "standard only",
			in:   "admin.api.load github.com/caddyserver/caddy/v2\n\n  Standard modules: 1\n",
			want: &listing{Standard: []listedModule{{ID: "admin.api.load", Package: CaddyModule}}},
		},
		{
			name: "unknown modules",
			in:   "a github.com/caddyserver/caddy/v2\n\n  Standard modules: 1\n\nb\n\n  Unknown modules: 1\n",
			want: &listing{
				Standard: []listedModule{{ID: "a", Package: CaddyModule}},
				Unknown:  []listedModule{{ID: "b"}},
			},
		},
		{name: "no build info (bare IDs)", in: "admin.api.load\nsoul\n", wantErr: "after the last footer"},
		{name: "wrong count", in: "a github.com/caddyserver/caddy/v2\n\n  Standard modules: 2\n", wantErr: "follows 1 modules"},
		{name: "error suffix", in: "a github.com/caddyserver/caddy/v2 [boom]\n\n  Standard modules: 1\n", wantErr: "module with an error"},
		{name: "versions too", in: "a v2.11.9 github.com/caddyserver/caddy/v2\n\n  Standard modules: 1\n", wantErr: "unexpected line"},
		{name: "empty", in: "", wantErr: "no \"Standard modules\" footer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseListModules(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseListModules = %+v, %v; want an error holding %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseListModules =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// isSoulModuleID reports whether a Caddy module ID is named as one of ours:
// the app "soul", anything in the "soul." namespace, or a last name
// element starting with "soul_" (http.handlers.soul_auth).
func isSoulModuleID(id string) bool {
	last := id[strings.LastIndex(id, ".")+1:]
	return id == "soul" || strings.HasPrefix(id, "soul.") || strings.HasPrefix(last, "soul_")
}

func TestIsSoulModuleID(t *testing.T) {
	for id, want := range map[string]bool{
		"soul":                     true,
		"soul.otp.twilio":          true,
		"http.handlers.soul_auth":  true,
		"caddy.storage.soul_redis": true,
		"soul_auth":                true,
		"http.handlers.rate_limit": false,
		"http.handlers.soulful":    false,
		"souls":                    false,
		"http.soul_x.handler":      false,
	} {
		if got := isSoulModuleID(id); got != want {
			t.Errorf("isSoulModuleID(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestBinaryModules runs the binary named by SOUL_TEST_BINARY (bin/caddy
// from `make build`, or a `go build ./cmd/caddy`) and checks its Caddy
// modules and Go dependencies against xcaddy.json and go.mod.
func TestBinaryModules(t *testing.T) {
	bin := os.Getenv(envBinary)
	if bin == "" {
		if os.Getenv(envRequire) == "1" {
			t.Fatalf("%s is unset; `make test` sets it to the built binary", envBinary)
		}
		t.Skipf("%s is unset (run `make test`, or set it to a built binary)", envBinary)
	}
	r := loadRepo(t)
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(r.root, bin)
	}

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("build info of %s: %v", bin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "list-modules", "--packages")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s list-modules --packages: %v", bin, err)
	}
	l, err := parseListModules(string(out))
	if err != nil {
		t.Fatalf("%s list-modules --packages: %v\n%s", bin, err, out)
	}
	t.Logf("%s (main module %s): %d standard and %d non-standard modules", bin, info.Main.Path, len(l.Standard), len(l.NonStandard))

	t.Run("modules", func(t *testing.T) {
		checkModules(t, r, info, l)
	})
	t.Run("dependencies", func(t *testing.T) {
		checkDependencies(t, r, info)
	})
}

// checkModules checks that every non-standard Caddy module comes from a
// plugin in xcaddy.json, that every plugin contributes one at least, and that
// our modules are the ones named as ours.
func checkModules(t *testing.T, r *repo, info *buildinfo.BuildInfo, l *listing) {
	if len(l.Standard) == 0 {
		t.Error("no standard modules")
	}
	for _, m := range l.Standard {
		if m.Package != CaddyModule {
			t.Errorf("standard module %s comes from %q, not %s", m.ID, m.Package, CaddyModule)
		}
	}
	for _, m := range l.Unknown {
		t.Errorf("module %s: Caddy could not load it", m.ID)
	}

	plugins := make(map[string]Plugin, len(r.config.Plugins))
	for _, p := range r.config.Plugins {
		plugins[p.Module] = p
	}
	contributed := map[string][]string{}
	origin := map[string]string{}
	for _, m := range l.NonStandard {
		from := m.Package
		if from == "" {
			// Caddy names no module for packages of the binary's main
			// module, which is ours in a `go build ./cmd/caddy`.
			from = info.Main.Path
		}
		origin[m.ID] = from
		p, ok := plugins[from]
		if !ok {
			t.Errorf("unexpected module %s from %s: no plugin in %s provides it", m.ID, from, FileName)
			continue
		}
		if p.Replace != "" && m.Package != "" && m.Replace == "" {
			t.Errorf("module %s comes from %s without its local replacement %s", m.ID, from, p.Replace)
		}
		if p.Replace == "" && m.Replace != "" {
			t.Errorf("module %s comes from %s replaced by %s; %s pins %s", m.ID, from, m.Replace, FileName, p.Version)
		}
		contributed[from] = append(contributed[from], m.ID)
		if soul := isSoulModuleID(m.ID); soul != (from == rootModule) {
			t.Errorf("module %s comes from %s: modules named soul, soul.* or *.soul_* and only they must come from %s", m.ID, from, rootModule)
		}
	}
	for _, p := range r.config.Plugins {
		if len(contributed[p.Module]) == 0 {
			t.Errorf("plugin %s contributes no Caddy module", p.Module)
		} else {
			t.Logf("%s: %s", p.Module, strings.Join(contributed[p.Module], " "))
		}
	}
	for id, from := range requiredModules {
		if got, ok := origin[id]; !ok {
			t.Errorf("module %s (from %s) is missing", id, from)
		} else if got != from {
			t.Errorf("module %s comes from %s, want %s", id, got, from)
		}
	}
}

// checkDependencies checks that the binary was built from Caddy and the
// plugins at their pinned versions, and from every other Go module at the
// version go.mod requires: xcaddy resolves the dependencies in a module of
// its own, and must arrive at ours.
func checkDependencies(t *testing.T, r *repo, info *buildinfo.BuildInfo) {
	deps := make(map[string]string, len(info.Deps))
	for _, d := range info.Deps {
		deps[d.Path] = d.Version
		if d.Path == rootModule {
			// A directory replacement has no version; build info shows "(devel)".
			if d.Replace == nil || (d.Replace.Version != "" && d.Replace.Version != "(devel)") {
				t.Errorf("%s is built from %+v, not from a local directory", rootModule, d.Replace)
			}
			continue
		}
		if d.Replace != nil {
			t.Errorf("dependency %s %s is replaced by %s %s", d.Path, d.Version, d.Replace.Path, d.Replace.Version)
		}
		want := r.required(d.Path)
		switch {
		case want == "":
			t.Errorf("dependency %s %s: go.mod does not require it", d.Path, d.Version)
		case want != d.Version:
			t.Errorf("dependency %s is at %s; go.mod requires %s", d.Path, d.Version, want)
		}
	}
	if got := deps[CaddyModule]; got != r.config.Caddy {
		t.Errorf("built with %s %q; %s pins %s", CaddyModule, got, FileName, r.config.Caddy)
	}
	for _, p := range r.config.Plugins {
		switch {
		case p.Replace != "":
			if _, dep := deps[p.Module]; !dep && info.Main.Path != p.Module {
				t.Errorf("built without %s", p.Module)
			}
		case deps[p.Module] != p.Version:
			t.Errorf("built with %s %q; %s pins %s", p.Module, deps[p.Module], FileName, p.Version)
		}
	}
}
