package deploytest

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// stage is one FROM and what follows it.
type stage struct {
	image string // after ARG substitution
	name  string
	body  []instruction
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// parseDockerfile splits a Dockerfile into stages, substituting the global
// ARG defaults into FROM lines as Docker does.
func parseDockerfile(t *testing.T, text string) []stage {
	t.Helper()
	var logical []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		if s := strings.TrimSpace(cur.String()); s != "" {
			logical = append(logical, s)
		}
		cur.Reset()
	}
	globalArgs := map[string]string{}
	var stages []stage
	for _, l := range logical {
		cmd, args, _ := strings.Cut(l, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		switch {
		case in.cmd == "ARG" && len(stages) == 0:
			name, def, _ := strings.Cut(in.args, "=")
			globalArgs[name] = def
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			st := stage{image: argRef.ReplaceAllStringFunc(f[0], func(m string) string {
				return globalArgs[argRef.FindStringSubmatch(m)[1]]
			})}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
		case len(stages) == 0:
			t.Fatalf("instruction before the first FROM: %s", l)
		default:
			stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
		}
	}
	return stages
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// execForm decodes an exec-form (JSON array) argument list.
func execForm(t *testing.T, what, args string) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(args), &v); err != nil {
		t.Fatalf("%s is not in exec form (a JSON array): %s", what, args)
	}
	return v
}

// makeBuildCommand returns the command `make build` runs to make the binary:
// the recipe of $(BIN) with the Makefile's variables filled in.
func makeBuildCommand(t *testing.T) string {
	t.Helper()
	mk := readRepoFile(t, "Makefile")
	vars := map[string]string{}
	lines := strings.Split(mk, "\n")
	for _, l := range lines {
		if m := regexp.MustCompile(`^([A-Z_]+)\s*:=\s*(.*)$`).FindStringSubmatch(l); m != nil {
			vars[m[1]] = strings.TrimSpace(m[2])
		}
	}
	for i, l := range lines {
		if strings.HasPrefix(l, "$(BIN):") && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "\t") {
			return regexp.MustCompile(`\$\(([A-Z_]+)\)`).ReplaceAllStringFunc(strings.TrimSpace(lines[i+1]), func(m string) string {
				return vars[m[2:len(m)-1]]
			})
		}
	}
	t.Fatal("Makefile: no recipe for $(BIN)")
	return ""
}

var pinned = regexp.MustCompile(`^[a-z0-9./-]+:([A-Za-z0-9._-]+)@sha256:[0-9a-f]{64}$`)

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, readRepoFile(t, "docker/Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("want a build stage and a runtime stage, got %d stages", len(stages))
	}
	build, runtime := stages[0], stages[1]

	t.Run("base images pinned by tag and digest", func(t *testing.T) {
		for _, st := range stages {
			if m := pinned.FindStringSubmatch(st.image); m == nil || m[1] == "latest" {
				t.Errorf("FROM %s: want name:version@sha256:digest", st.image)
			}
		}
		if !strings.HasPrefix(runtime.image, "gcr.io/distroless/static-debian12:nonroot@") {
			t.Errorf("runtime image %s, want distroless static nonroot", runtime.image)
		}
	})

	t.Run("build runs scripts/build.sh as make build does", func(t *testing.T) {
		want := makeBuildCommand(t)
		if !strings.HasPrefix(want, "scripts/build.sh ") {
			t.Fatalf("make build runs %q, not scripts/build.sh", want)
		}
		var found bool
		for _, run := range build.all("RUN") {
			// Only environment assignments may come before the script.
			fields := strings.Fields(run.args)
			i := 0
			for i < len(fields) && regexp.MustCompile(`^[A-Z_]+=`).MatchString(fields[i]) {
				i++
			}
			if strings.Join(fields[i:], " ") == want {
				found = true
			}
		}
		if !found {
			t.Errorf("no RUN line of the build stage runs %q", want)
		}
	})

	t.Run("go.mod's Go version is the build image's", func(t *testing.T) {
		gomod := readRepoFile(t, "go.mod")
		m := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(gomod)
		if m == nil {
			t.Fatal("go.mod has no go line")
		}
		if !strings.HasPrefix(build.image, "golang:"+m[1]+"-") && !strings.HasPrefix(build.image, "golang:"+m[1]+"@") {
			t.Errorf("build image %s, want golang:%s (go.mod)", build.image, m[1])
		}
	})

	t.Run("runtime stage", func(t *testing.T) {
		if runs := runtime.all("RUN"); len(runs) > 0 {
			t.Errorf("the runtime stage has no shell, but runs %q", runs[0].args)
		}
		copies := map[string]bool{}
		for _, c := range runtime.all("COPY") {
			f := strings.Fields(c.args)
			if !slices.Contains(f, "--from="+build.name) {
				continue
			}
			var paths []string
			for _, x := range f {
				if !strings.HasPrefix(x, "--") {
					paths = append(paths, x)
				}
			}
			if len(paths) == 2 {
				copies[paths[0]+" "+paths[1]] = true
			}
		}
		for _, want := range []string{"/src/bin/caddy /usr/bin/caddy", "/src/Caddyfile /etc/caddy/Caddyfile"} {
			if !copies[want] {
				t.Errorf("no COPY --from=%s %s", build.name, want)
			}
		}

		users := runtime.all("USER")
		if len(users) == 0 {
			t.Fatal("no USER: the image would run as root")
		}
		if u := users[len(users)-1].args; u == "0" || strings.HasPrefix(u, "root") || strings.HasPrefix(u, "0:") {
			t.Errorf("USER %s is root", u)
		}

		if e := runtime.all("ENTRYPOINT"); len(e) > 0 {
			t.Errorf("ENTRYPOINT %s: Railway's pre-deploy command must be able to replace the whole command", e[0].args)
		}
		cmds := runtime.all("CMD")
		if len(cmds) != 1 {
			t.Fatalf("want one CMD, got %d", len(cmds))
		}
		wantCmd := []string{"caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"}
		if got := execForm(t, "CMD", cmds[0].args); !slices.Equal(got, wantCmd) {
			t.Errorf("CMD %q, want %q", got, wantCmd)
		}

		hc := runtime.all("HEALTHCHECK")
		if len(hc) != 1 {
			t.Fatalf("want one HEALTHCHECK, got %d", len(hc))
		}
		_, hcCmd, ok := strings.Cut(hc[0].args, "CMD ")
		if !ok {
			t.Fatalf("HEALTHCHECK without CMD: %s", hc[0].args)
		}
		if got := execForm(t, "HEALTHCHECK CMD", strings.TrimSpace(hcCmd)); !slices.Equal(got, []string{"caddy", "soul", "healthcheck"}) {
			t.Errorf("HEALTHCHECK CMD %q, want caddy soul healthcheck", got)
		}

		env := map[string]string{}
		for _, e := range runtime.all("ENV") {
			for _, kv := range strings.Fields(e.args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
		var owned string
		for _, c := range runtime.all("COPY") {
			if strings.Contains(c.args, "--chown=65532:65532") {
				f := strings.Fields(c.args)
				owned = f[len(f)-1]
			}
		}
		if owned == "" {
			t.Fatal("no directory COPY --chown'ed to the nonroot user")
		}
		for _, k := range []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME", "SQLITE_PATH"} {
			if !strings.HasPrefix(env[k], owned+"/") {
				t.Errorf("ENV %s=%q is not under the writable %s", k, env[k], owned)
			}
		}
		if env["PORT"] == "" {
			t.Error("no default PORT")
		}
	})
}

func TestDockerignore(t *testing.T) {
	var patterns []string
	for _, l := range strings.Split(readRepoFile(t, ".dockerignore"), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimSuffix(strings.TrimPrefix(l, "/"), "/"))
		}
	}
	ignored := func(path string) bool {
		for _, p := range patterns {
			first, _, _ := strings.Cut(path, "/")
			if p == path || p == first || (strings.HasPrefix(p, ".env") && strings.HasPrefix(path, ".env")) ||
				strings.HasPrefix(path, p+"/") {
				return true
			}
			if ok, _ := pathMatch(p, path); ok {
				return true
			}
		}
		return false
	}
	for _, path := range []string{".git", "bin", ".env.production", "railway/.env.production"} {
		if !ignored(path) {
			t.Errorf("%s is sent to the build context", path)
		}
	}
	// What scripts/build.sh needs must stay.
	for _, path := range []string{"go.mod", "go.sum", "xcaddy.json", "Caddyfile", "scripts/build.sh", "scripts/xcaddyargs/main.go", "cmd/caddy/main.go", "caddymodules/all/all.go", "internal/database", "migrations/postgres", "api/openapi.json", "plugin.go"} {
		if ignored(path) {
			t.Errorf("%s is left out of the build context, which needs it", path)
		}
	}
}
