package deploytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The keys of Railway's config-as-code file that this project uses
// (https://docs.railway.com/reference/config-as-code); decoding refuses any
// other, so a misspelt key fails here rather than being ignored by Railway.
type railwayBuild struct {
	Builder        string `json:"builder"`
	DockerfilePath string `json:"dockerfilePath"`
}

type railwayDeploy struct {
	StartCommand            *string  `json:"startCommand"`
	PreDeployCommand        []string `json:"preDeployCommand"`
	HealthcheckPath         string   `json:"healthcheckPath"`
	HealthcheckTimeout      *int     `json:"healthcheckTimeout"`
	RestartPolicyType       string   `json:"restartPolicyType"`
	RestartPolicyMaxRetries *int     `json:"restartPolicyMaxRetries"`
	NumReplicas             *int     `json:"numReplicas"`
	OverlapSeconds          *int     `json:"overlapSeconds"`
	DrainingSeconds         *int     `json:"drainingSeconds"`
}

type railwayEnvironment struct {
	Build  *railwayBuild  `json:"build"`
	Deploy *railwayDeploy `json:"deploy"`
}

type railwayConfig struct {
	Schema       string                        `json:"$schema"`
	Build        railwayBuild                  `json:"build"`
	Deploy       railwayDeploy                 `json:"deploy"`
	Environments map[string]railwayEnvironment `json:"environments"`
}

// merged is the deploy config of one environment: its overrides on the base.
func (c railwayConfig) merged(env string) railwayDeploy {
	d := c.Deploy
	o := c.Environments[env].Deploy
	if o == nil {
		return d
	}
	if o.PreDeployCommand != nil {
		d.PreDeployCommand = o.PreDeployCommand
	}
	if o.HealthcheckPath != "" {
		d.HealthcheckPath = o.HealthcheckPath
	}
	if o.RestartPolicyType != "" {
		d.RestartPolicyType = o.RestartPolicyType
	}
	for _, p := range [][2]**int{
		{&d.HealthcheckTimeout, &o.HealthcheckTimeout}, {&d.RestartPolicyMaxRetries, &o.RestartPolicyMaxRetries},
		{&d.NumReplicas, &o.NumReplicas}, {&d.OverlapSeconds, &o.OverlapSeconds}, {&d.DrainingSeconds, &o.DrainingSeconds},
	} {
		if *p[1] != nil {
			*p[0] = *p[1]
		}
	}
	if o.StartCommand != nil {
		d.StartCommand = o.StartCommand
	}
	return d
}

func loadRailway(t *testing.T, data []byte) (railwayConfig, error) {
	t.Helper()
	var c railwayConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	// encoding/json matches keys regardless of case; Railway does not.
	var raw any
	if err := json.Unmarshal(data, &raw); err != nil {
		return c, err
	}
	if bad := unknownKeys(raw, reflect.TypeOf(c), ""); len(bad) > 0 {
		return c, fmt.Errorf("unknown keys: %s", strings.Join(bad, ", "))
	}
	return c, nil
}

// unknownKeys lists the object keys of v that typ has no exact json tag for.
func unknownKeys(v any, typ reflect.Type, path string) []string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	var bad []string
	switch typ.Kind() {
	case reflect.Map:
		for k, sub := range obj {
			bad = append(bad, unknownKeys(sub, typ.Elem(), path+k+".")...)
		}
	case reflect.Struct:
		fields := map[string]reflect.Type{}
		for i := 0; i < typ.NumField(); i++ {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			fields[name] = typ.Field(i).Type
		}
		for k, sub := range obj {
			ft, ok := fields[k]
			if !ok {
				bad = append(bad, path+k)
				continue
			}
			bad = append(bad, unknownKeys(sub, ft, path+k+".")...)
		}
	}
	sort.Strings(bad)
	return bad
}

// caddyWriteTimeout is the longest a request may take in the Caddyfile.
func caddyWriteTimeout(t *testing.T) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*write (\d+)s$`).FindStringSubmatch(readRepoFile(t, "Caddyfile"))
	if m == nil {
		t.Fatal("Caddyfile: no `write <n>s` timeout")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestRailwayConfig(t *testing.T) {
	c, err := loadRailway(t, []byte(readRepoFile(t, "railway.json")))
	if err != nil {
		t.Fatalf("railway.json: %v", err)
	}
	if c.Schema != "https://railway.com/railway.schema.json" {
		t.Errorf("$schema %q", c.Schema)
	}
	if c.Build.Builder != "DOCKERFILE" {
		t.Errorf("build.builder %q, want DOCKERFILE", c.Build.Builder)
	}
	if c.Build.DockerfilePath != "docker/Dockerfile" {
		t.Errorf("build.dockerfilePath %q, want docker/Dockerfile", c.Build.DockerfilePath)
	}
	if _, err := os.Stat(filepath.Join(repoRoot(), c.Build.DockerfilePath)); err != nil {
		t.Errorf("build.dockerfilePath: %v", err)
	}
	for name, e := range c.Environments {
		if e.Build != nil {
			t.Errorf("environments.%s overrides the build: both environments must run the same image", name)
		}
	}
	for _, name := range []string{"staging", "production"} {
		if _, ok := c.Environments[name]; !ok {
			t.Errorf("no environments.%s", name)
		}
	}

	write := caddyWriteTimeout(t)
	for _, env := range []string{"staging", "production"} {
		t.Run(env, func(t *testing.T) {
			d := c.merged(env)
			if d.StartCommand != nil {
				t.Errorf("startCommand %q: the image's CMD is the start command", *d.StartCommand)
			}
			if !slices.Equal(d.PreDeployCommand, []string{"caddy soul migrate up"}) {
				t.Errorf("preDeployCommand %q, want [caddy soul migrate up]", d.PreDeployCommand)
			}
			if d.HealthcheckPath != "/healthz" {
				t.Errorf("healthcheckPath %q, want /healthz", d.HealthcheckPath)
			}
			if d.HealthcheckTimeout == nil || *d.HealthcheckTimeout < 30 {
				t.Errorf("healthcheckTimeout %v: want 30 s or more (the database may take that to answer)", d.HealthcheckTimeout)
			}
			if d.RestartPolicyType != "ON_FAILURE" || d.RestartPolicyMaxRetries == nil || *d.RestartPolicyMaxRetries < 1 {
				t.Errorf("restart policy %q with %v retries, want ON_FAILURE with some", d.RestartPolicyType, d.RestartPolicyMaxRetries)
			}
			if d.OverlapSeconds == nil || *d.OverlapSeconds < 1 {
				t.Errorf("overlapSeconds %v: want the old deploy serving for a while after the new one is live", d.OverlapSeconds)
			}
			// A request that started just before SIGTERM may run for the
			// Caddyfile's write timeout: draining must outlast it.
			if d.DrainingSeconds == nil || *d.DrainingSeconds < write {
				t.Errorf("drainingSeconds %v, want at least the Caddyfile's write timeout (%d s)", d.DrainingSeconds, write)
			}
			if d.NumReplicas != nil && *d.NumReplicas < 1 {
				t.Errorf("numReplicas %d", *d.NumReplicas)
			}
		})
	}

	// The Caddyfile serves the health path Railway asks for.
	if !strings.Contains(readRepoFile(t, "Caddyfile"), "handle "+c.Deploy.HealthcheckPath+" {") {
		t.Errorf("the Caddyfile has no handle %s", c.Deploy.HealthcheckPath)
	}
}

// Unknown or misspelt keys are refused, at any level.
func TestRailwayConfigRefusesUnknownKeys(t *testing.T) {
	for _, bad := range []string{
		`{"build":{"builder":"DOCKERFILE","dockerFilePath":"x"}}`,
		`{"deploy":{"overlapSecond":10}}`,
		`{"environments":{"staging":{"deploy":{"healthCheckPath":"/"}}}}`,
		`{"deploy":{"drainingSeconds":"10"}}`,
	} {
		if _, err := loadRailway(t, []byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
