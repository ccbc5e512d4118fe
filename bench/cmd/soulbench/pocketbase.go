package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/soulapp/soul/bench/benchproc"
)

// PocketBase is the peer SOUL's list is compared with: bench/pocketbase, its
// own Go module pinning PocketBase v0.39.11, with a moods collection like
// SOUL's (a user relation, score, label, note, tags, recorded_at; list and
// view rules user = @request.auth.id; an index on (user, recorded_at)). It
// is built into a throwaway directory, served from there with its SQLite
// data, seeded with the same users and moods as SOUL through its REST API
// as a superuser, and removed at the end.

const (
	pbSuperuser = "bench@example.com"
	pbPassword  = "soulbench-password"
)

// pbListPath is PocketBase's equivalent of SOUL's GET /api/moods: the
// signed-in user's newest 20 moods. skipTotal=1 drops the COUNT(*) query
// PocketBase otherwise runs for totalItems/totalPages, which SOUL's list
// (a keyset page with a Link to the next) does not have either.
const pbListPath = "/api/collections/moods/records?perPage=20&sort=-recorded_at&skipTotal=1"

// buildPocketBase compiles the module in src into dir; the first build
// downloads and compiles PocketBase's dependencies, later ones come from
// Go's build cache.
func buildPocketBase(src, dir string) (string, error) {
	bin := filepath.Join(dir, "pocketbase")
	cmd := exec.Command("go", "build", "-C", src, "-o", bin, ".")
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -C %s: %v\n%s", src, err, out)
	}
	return bin, nil
}

// pocketBase is a running PocketBase.
type pocketBase struct {
	Base string
	cmd  *exec.Cmd
	log  *benchproc.TailBuffer
	done chan struct{}
}

// startPocketBase creates the superuser, then serves on a free loopback
// port with its data in dir/pb_data, and returns once /api/health answers.
// --dev=false: PocketBase guesses dev mode (every SQL statement logged) for
// a binary under the temporary directory, as if run by go run.
func startPocketBase(bin, dir string) (*pocketBase, error) {
	data := filepath.Join(dir, "pb_data")
	if out, err := exec.Command(bin, "superuser", "upsert", pbSuperuser, pbPassword, "--dir", data, "--dev=false").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pocketbase superuser upsert: %v\n%s", err, out)
	}
	ports, err := benchproc.FreePorts(1)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	p := &pocketBase{Base: "http://" + addr, log: &benchproc.TailBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", "--http", addr, "--dir", data, "--dev=false")
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	health := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("pocketbase exited:\n%s", p.log.Tail(4<<10))
		default:
		}
		if resp, err := health.Get(p.Base + "/api/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
	}
	p.Stop()
	return nil, fmt.Errorf("pocketbase did not answer /api/health in 60s:\n%s", p.log.Tail(4<<10))
}

// Pid is PocketBase's process id.
func (p *pocketBase) Pid() int { return p.cmd.Process.Pid }

// Stop interrupts PocketBase and kills it if it has not exited in 10 s.
func (p *pocketBase) Stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// peakRSSMB is PocketBase's VmHWM in MiB.
func (p *pocketBase) peakRSSMB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0
	}
	return benchproc.ProcFields(b)["VmHWM"] / 1024
}

// seed creates users users with moods moods each, shaped as SOUL's seed
// (score j%10+1, label "steady", note "seeded mood j", tags work and sleep,
// recorded now), as the superuser, one POST at a time as SOUL is seeded;
// then signs each user in and returns their tokens.
func (p *pocketBase) seed(c *http.Client, users, moods int) ([]string, error) {
	token := func(collection, identity string) (string, error) {
		body := fmt.Sprintf(`{"identity":%q,"password":%q}`, identity, pbPassword)
		st, b, err := send(c, http.MethodPost, p.Base+"/api/collections/"+collection+"/auth-with-password", "", body)
		if err != nil || st != http.StatusOK {
			return "", fmt.Errorf("pocketbase %s auth-with-password: %d %s %v", collection, st, b, err)
		}
		var auth struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(b, &auth); err != nil || auth.Token == "" {
			return "", fmt.Errorf("pocketbase %s auth-with-password: no token in %s", collection, b)
		}
		return auth.Token, nil
	}
	su, err := token("_superusers", pbSuperuser)
	if err != nil {
		return nil, err
	}
	tokens := make([]string, users)
	for i := range tokens {
		email := fmt.Sprintf("user%02d@bench.example.com", i)
		body := fmt.Sprintf(`{"email":%q,"password":%q,"passwordConfirm":%q}`, email, pbPassword, pbPassword)
		st, b, err := send(c, http.MethodPost, p.Base+"/api/collections/users/records", su, body)
		if err != nil || st != http.StatusOK {
			return nil, fmt.Errorf("pocketbase create user: %d %s %v", st, b, err)
		}
		var user struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &user); err != nil || user.ID == "" {
			return nil, fmt.Errorf("pocketbase create user: no id in %s", b)
		}
		for j := 0; j < moods; j++ {
			body := fmt.Sprintf(`{"user":%q,"score":%d,"label":"steady","note":"seeded mood %d","tags":["work","sleep"],"recorded_at":%q}`,
				user.ID, j%10+1, j, time.Now().UTC().Format("2006-01-02 15:04:05.000Z"))
			if st, b, err := send(c, http.MethodPost, p.Base+"/api/collections/moods/records", su, body); err != nil || st != http.StatusOK {
				return nil, fmt.Errorf("pocketbase seed mood: %d %s %v", st, b, err)
			}
		}
		if tokens[i], err = token("users", email); err != nil {
			return nil, err
		}
	}
	return tokens, nil
}

// pocketBaseScenario names PocketBase's row: GET pbListPath.
const pocketBaseScenario = "PocketBase GET moods/records"

// pbBuild is the PocketBase binary built, in its throwaway directory.
type pbBuild struct {
	bin, dir string
	err      error
}

// runPocketBase starts the PocketBase built, seeds it as SOUL is seeded,
// drives its list in the same closed loop as SOUL's and stops it.
func runPocketBase(cfg config, b pbBuild, c *http.Client, meter *cpuMeter, measured func(name, mode string, attack func() *recording) Result) (Result, error) {
	if b.err != nil {
		return Result{}, b.err
	}
	p, err := startPocketBase(b.bin, b.dir)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		p.Stop()
		_ = os.RemoveAll(filepath.Join(b.dir, "pb_data"))
	}()
	fmt.Fprintf(os.Stderr, "soulbench: PocketBase: %d users, %d moods each\n", cfg.users, cfg.moods)
	tokens, err := p.seed(c, cfg.users, cfg.moods)
	if err != nil {
		return Result{}, err
	}
	if st, body, err := send(c, http.MethodGet, p.Base+pbListPath, tokens[0], ""); err != nil || st != http.StatusOK || listItems(body) != listPage {
		return Result{}, fmt.Errorf("PocketBase's list does not give %d moods: %d %.300s %v", listPage, st, body, err)
	}
	load := listRequests(perUser(tokens, vegeta.Target{Method: http.MethodGet, URL: p.Base + pbListPath})...)
	fmt.Fprintf(os.Stderr, "soulbench: %s, %d workers, %s\n", pocketBaseScenario, cfg.concurrency, cfg.duration)
	closedLoop(c, cfg.concurrency, cfg.warmup, load)
	meter.pb = p.Pid()
	r := measured(pocketBaseScenario, "closed", func() *recording { return closedLoop(c, cfg.concurrency, cfg.duration, load) })
	meter.pb = 0
	r.Concurrency = cfg.concurrency
	r.PocketBasePeakRSSMB = p.peakRSSMB()
	return r, nil
}

// moduleVersion is the version dir's go.mod requires of module, or "".
func moduleVersion(dir, module string) string {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == module {
			return f[1]
		}
	}
	return ""
}
