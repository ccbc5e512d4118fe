// Command soulbench runs the SOUL binary on real Postgres and Redis and
// measures its routes side by side in one run, against a baseline route
// that answers a constant with Caddy's respond.
//
//	scripts/testenv.sh go run ./bench/cmd/soulbench -binary bin/caddy \
//		-out bench/results.json -png bench/results.png
//
// It needs SOUL_TEST_DATABASE_URL and SOUL_TEST_REDIS_URL (scripts/testenv.sh
// sets them); it creates its own database and drops it at the end. Load is
// generated here, not by a library: a closed loop of a fixed number of
// workers, each sending its next request when the previous one is answered,
// and, for the half-load run, an open loop that sends at a fixed rate and
// measures each latency from the time the request was due, so a slow server
// cannot hide its queue. Every latency is kept; percentiles are exact.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	_ "github.com/uptrace/bun/driver/pgdriver" // registers "pg"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.binary, "binary", "bin/caddy", "the SOUL binary to run")
	flag.StringVar(&cfg.caddyfile, "caddyfile", "bench/Caddyfile.bench", "the bench Caddyfile")
	flag.StringVar(&cfg.out, "out", "", "write the results as JSON to this file")
	flag.StringVar(&cfg.png, "png", "", "write a chart of the results to this PNG file")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "save a CPU profile of the binary under GET /api/moods load to this file")
	flag.DurationVar(&cfg.duration, "duration", 6*time.Second, "how long each scenario runs")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured load before each scenario")
	flag.IntVar(&cfg.concurrency, "concurrency", 16, "workers of the closed loop")
	flag.IntVar(&cfg.users, "users", 16, "users signed in for the mood routes")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "soulbench:", err)
		os.Exit(1)
	}
}

type config struct {
	binary, caddyfile, out, png, cpuProfile string
	duration, warmup                        time.Duration
	concurrency, users                      int
}

// Result is one scenario's figures; results.json holds a list of them.
type Result struct {
	Name        string  `json:"name"`
	Mode        string  `json:"mode"` // closed (fixed concurrency) or open (fixed rate)
	Concurrency int     `json:"concurrency,omitempty"`
	TargetRate  float64 `json:"target_rate,omitempty"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	RPS         float64 `json:"rps"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	// FirstError is the first failure seen, to tell what the errors were.
	FirstError string `json:"first_error,omitempty"`
	// RatioToBaseline is RPS over the baseline's RPS in the same run.
	RatioToBaseline float64 `json:"ratio_to_baseline"`
	// PeakRSSMB is the binary's VmHWM after the scenario: the peak of the
	// whole process so far, so it never falls from one row to the next.
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// RedisCommands counts each Redis command during the scenario (INFO
	// commandstats, which also counts the calls a script makes inside
	// Redis) over its requests, where measured.
	RedisCommands map[string]float64 `json:"redis_commands_per_request,omitempty"`
}

// Report is results.json.
type Report struct {
	When        time.Time `json:"when"`
	Machine     string    `json:"machine"`
	DurationSec float64   `json:"duration_per_scenario_sec"`
	Results     []Result  `json:"results"`
	Targets     []Target  `json:"targets"`
}

// Target is one goal from the issue and what this run measured.
type Target struct {
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

func run(cfg config) error {
	adminURL := os.Getenv("SOUL_TEST_DATABASE_URL")
	redisURL := os.Getenv("SOUL_TEST_REDIS_URL")
	if adminURL == "" || redisURL == "" {
		return errors.New("SOUL_TEST_DATABASE_URL and SOUL_TEST_REDIS_URL must be set (run under scripts/testenv.sh)")
	}
	for _, u := range []string{adminURL, redisURL} {
		if err := checkLoopback(u); err != nil {
			return err
		}
	}
	dbURL, drop, err := createDatabase(adminURL)
	if err != nil {
		return err
	}
	defer drop()

	srv, err := startServer(cfg, dbURL, redisURL)
	if err != nil {
		return err
	}
	defer srv.stop()

	ropt, err := rueidis.ParseURL(redisURL)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	ropt.DisableCache = true
	rdb, err := rueidis.NewClient(ropt)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	defer rdb.Close()

	client := newClient(cfg.concurrency * 4)
	var phones atomic.Int64
	fmt.Fprintf(os.Stderr, "soulbench: signing in %d users, 30 moods each\n", cfg.users)
	tokens := make([]string, cfg.users)
	for i := range tokens {
		tok, err := signIn(client, srv.base, phone(phones.Add(1)))
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		tokens[i] = tok
		for j := 0; j < 30; j++ {
			body := fmt.Sprintf(`{"score":%d,"label":"steady","note":"seeded mood %d","tags":["work","sleep"]}`, j%10+1, j)
			if st, b, err := send(client, http.MethodPost, srv.base+"/api/moods", tok, body); err != nil || st != http.StatusCreated {
				return fmt.Errorf("seed mood: %d %s %v", st, b, err)
			}
		}
	}
	if st, b, err := send(client, http.MethodGet, srv.base+"/api/moods", tokens[0], ""); err != nil || st != http.StatusOK || strings.Count(string(b), `"id"`) != 20 {
		return fmt.Errorf("GET /api/moods does not list 20 moods: %d %v", st, err)
	}

	get := func(base, path string, auth bool) op {
		return func(c *http.Client, w, i int) error {
			tok := ""
			if auth {
				tok = tokens[(w+i)%len(tokens)]
			}
			return expect(c, http.MethodGet, base+path, tok, "", http.StatusOK)
		}
	}
	postMood := func(c *http.Client, w, i int) error {
		return expect(c, http.MethodPost, srv.base+"/api/moods", tokens[(w+i)%len(tokens)],
			`{"score":7,"label":"calm","note":"a walk","tags":["walk","sun"]}`, http.StatusCreated)
	}
	otpPair := func(c *http.Client, w, i int) error {
		_, err := signIn(c, srv.base, phone(phones.Add(1)))
		return err
	}

	scenarios := []struct {
		name  string
		op    op
		redis bool
	}{
		{"baseline (respond)", get(srv.base, "/bench/baseline", false), false},
		{"GET /healthz", get(srv.base, "/healthz", false), false},
		{"GET /api/moods (limits on)", get(srv.base, "/api/moods", true), true},
		{"GET /api/moods (limits off)", get(srv.nolimit, "/api/moods", true), true},
		{"POST /api/moods", postMood, false},
		{"otp/request + verify-otp", otpPair, false},
	}
	var results []Result
	for _, s := range scenarios {
		fmt.Fprintf(os.Stderr, "soulbench: %s, %d workers, %s\n", s.name, cfg.concurrency, cfg.duration)
		closedLoop(client, cfg.concurrency, cfg.warmup, s.op)
		before := redisCommands(rdb)
		rec := closedLoop(client, cfg.concurrency, cfg.duration, s.op)
		after := redisCommands(rdb)
		r := rec.result(s.name, "closed")
		r.Concurrency = cfg.concurrency
		if s.redis {
			r.RedisCommands = perRequest(before, after, r.Requests)
		}
		r.PeakRSSMB = srv.peakRSSMB()
		results = append(results, r)
	}

	// Half the saturating load of GET /api/moods, at a fixed rate.
	sat := results[2].RPS
	rate := sat / 2
	fmt.Fprintf(os.Stderr, "soulbench: GET /api/moods (limits on) open loop at %.0f/s\n", rate)
	// Its own pool, as large as the in-flight bound, so a burst does not
	// open and close connections.
	rec := openLoop(newClient(maxInFlight), rate, cfg.duration, get(srv.base, "/api/moods", true))
	half := rec.result("GET /api/moods at half load", "open")
	half.TargetRate = rate
	half.PeakRSSMB = srv.peakRSSMB()
	results = append(results, half)

	base := results[0].RPS
	for i := range results {
		if base > 0 {
			results[i].RatioToBaseline = results[i].RPS / base
		}
	}

	if cfg.cpuProfile != "" {
		fmt.Fprintf(os.Stderr, "soulbench: CPU profile under GET /api/moods load -> %s\n", cfg.cpuProfile)
		if err := profile(srv, client, cfg, get(srv.base, "/api/moods", true)); err != nil {
			return err
		}
	}

	rep := Report{When: time.Now().UTC().Truncate(time.Second), Machine: machine(), DurationSec: cfg.duration.Seconds(), Results: results}
	rep.Targets = targets(results)
	printTable(os.Stdout, rep)
	if cfg.out != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(cfg.out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if cfg.png != "" {
		if err := writeChart(cfg.png, rep); err != nil {
			return err
		}
	}
	return nil
}

func targets(rs []Result) []Target {
	find := func(name string) Result {
		for _, r := range rs {
			if r.Name == name {
				return r
			}
		}
		return Result{}
	}
	on, off, half := find("GET /api/moods (limits on)"), find("GET /api/moods (limits off)"), find("GET /api/moods at half load")
	var peak float64
	for _, r := range rs {
		peak = max(peak, r.PeakRSSMB)
	}
	extra := -1.0
	if on.RedisCommands != nil && off.RedisCommands != nil {
		extra = roundTrips(on.RedisCommands, inLimiterScript) - roundTrips(off.RedisCommands, inLimiterScript)
	}
	return []Target{
		{"authenticated GET /api/moods >= 25% of baseline rps", fmt.Sprintf("%.1f%%", 100*on.RatioToBaseline), on.RatioToBaseline >= 0.25},
		{"p99 < 10 ms at half the saturating load", fmt.Sprintf("%.2f ms at %.0f/s", half.P99ms, half.TargetRate), half.P99ms < 10 && half.Requests > 0},
		{"rate limiting adds <= 1 Redis round trip", fmt.Sprintf("%.2f more Redis round trips per request with limits on (%s); %.0f req/s on vs %.0f off", extra, describe(on.RedisCommands), on.RPS, off.RPS), extra >= 0 && extra <= 1.05},
		{"peak RSS < 150 MB at saturating load", fmt.Sprintf("%.1f MB", peak), peak > 0 && peak < 150},
	}
}

func printTable(w io.Writer, rep Report) {
	fmt.Fprintf(w, "\n%s, %.0fs per scenario\n\n", rep.Machine, rep.DurationSec)
	fmt.Fprintf(w, "| scenario | load | req/s | p50 ms | p90 ms | p99 ms | errors | vs baseline | peak RSS MB | Redis round trips/req |\n")
	fmt.Fprintf(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rep.Results {
		load := fmt.Sprintf("%d workers", r.Concurrency)
		if r.Mode == "open" {
			load = fmt.Sprintf("%.0f/s fixed", r.TargetRate)
		}
		cmds := ""
		if r.RedisCommands != nil {
			cmds = fmt.Sprintf("%.2f", roundTrips(r.RedisCommands, inLimiterScript))
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.2f | %.2f | %.2f | %d | %.2f | %.1f | %s |\n",
			r.Name, load, r.RPS, r.P50ms, r.P90ms, r.P99ms, r.Errors, r.RatioToBaseline, r.PeakRSSMB, cmds)
	}
	for _, r := range rep.Results {
		if r.FirstError != "" {
			fmt.Fprintf(w, "\n%s: %d errors, the first: %.300s\n", r.Name, r.Errors, r.FirstError)
		}
	}
	fmt.Fprintf(w, "\n| target | measured | met |\n|---|---|---|\n")
	for _, t := range rep.Targets {
		met := "no"
		if t.Met {
			met = "yes"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.Goal, t.Measured, met)
	}
}

// op sends one request (or one exchange) for worker w's i-th iteration.
type op func(c *http.Client, w, i int) error

// recording holds every latency of a scenario.
type recording struct {
	lat      []time.Duration
	errors   int
	firstErr string
	elapsed  time.Duration
}

func (r *recording) result(name, mode string) Result {
	res := Result{Name: name, Mode: mode, Requests: len(r.lat) + r.errors, Errors: r.errors, FirstError: r.firstErr}
	if r.elapsed > 0 {
		res.RPS = float64(len(r.lat)) / r.elapsed.Seconds()
	}
	if len(r.lat) > 0 {
		slices.Sort(r.lat)
		pct := func(p float64) float64 {
			i := int(p * float64(len(r.lat)-1))
			return float64(r.lat[i]) / float64(time.Millisecond)
		}
		res.P50ms, res.P90ms, res.P99ms = pct(0.50), pct(0.90), pct(0.99)
		res.MaxMs = float64(r.lat[len(r.lat)-1]) / float64(time.Millisecond)
	}
	return res
}

// maxSamples bounds each worker's iterations whatever the duration.
const maxSamples = 2_000_000

// closedLoop runs n workers for d, each sending its next request when the
// last one is answered; req/s counts successful requests only.
func closedLoop(c *http.Client, n int, d time.Duration, f op) *recording {
	lats := make([][]time.Duration, n)
	errs := make([]int, n)
	firstErrs := make([]string, n)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < maxSamples/n && time.Now().Before(deadline); i++ {
				t0 := time.Now()
				if err := f(c, w, i); err != nil {
					if errs[w] == 0 {
						firstErrs[w] = err.Error()
					}
					errs[w]++
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	rec := &recording{elapsed: time.Since(start)}
	for w := range lats {
		rec.lat = append(rec.lat, lats[w]...)
		rec.errors += errs[w]
		if rec.firstErr == "" {
			rec.firstErr = firstErrs[w]
		}
	}
	return rec
}

// maxInFlight bounds the open loop's outstanding requests.
const maxInFlight = 1024

// openLoop sends at rate per second for d, each request on its own
// goroutine, and measures each latency from when it was due. At most
// maxInFlight are outstanding; a request due beyond that counts as an error.
func openLoop(c *http.Client, rate float64, d time.Duration, f op) *recording {
	total := int(rate * d.Seconds())
	if total <= 0 || rate <= 0 {
		return &recording{}
	}
	interval := time.Duration(float64(time.Second) / rate)
	var mu sync.Mutex
	rec := &recording{lat: make([]time.Duration, 0, total)}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case sem <- struct{}{}:
		default:
			mu.Lock()
			if rec.errors == 0 {
				rec.firstErr = "more than maxInFlight requests outstanding"
			}
			rec.errors++
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func(i int, due time.Time) {
			defer func() { <-sem; wg.Done() }()
			err := f(c, i%64, i)
			lat := time.Since(due)
			mu.Lock()
			if err != nil {
				if rec.errors == 0 {
					rec.firstErr = err.Error()
				}
				rec.errors++
			} else {
				rec.lat = append(rec.lat, lat)
			}
			mu.Unlock()
		}(i, due)
	}
	wg.Wait()
	rec.elapsed = time.Since(start)
	return rec
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// send makes one request and returns the status and body.
func send(c *http.Client, method, u, token, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

func expect(c *http.Client, method, u, token, body string, want int) error {
	st, b, err := send(c, method, u, token, body)
	if err != nil {
		return err
	}
	if st != want {
		return fmt.Errorf("%s %s: %d %s", method, u, st, bytes.TrimSpace(b))
	}
	return nil
}

// phone is the n-th of 100 000 distinct valid UK mobile numbers.
func phone(n int64) string { return fmt.Sprintf("+4474009%05d", n%100000) }

// signIn requests a code from the local provider, reads it from
// preview_code and verifies it; it returns the access token.
func signIn(c *http.Client, base, phone string) (string, error) {
	st, b, err := send(c, http.MethodPost, base+"/api/auth/otp/request", "", `{"phone":"`+phone+`"}`)
	if err != nil || st != http.StatusOK {
		return "", fmt.Errorf("otp/request: %d %s %v", st, bytes.TrimSpace(b), err)
	}
	var sent struct {
		PreviewCode string `json:"preview_code"`
	}
	if err := json.Unmarshal(b, &sent); err != nil || sent.PreviewCode == "" {
		return "", fmt.Errorf("otp/request: no preview_code in %s", b)
	}
	st, b, err = send(c, http.MethodPost, base+"/api/auth/verify-otp", "", `{"phone":"`+phone+`","code":"`+sent.PreviewCode+`"}`)
	if err != nil || st != http.StatusOK {
		return "", fmt.Errorf("verify-otp: %d %s %v", st, bytes.TrimSpace(b), err)
	}
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &pair); err != nil || pair.AccessToken == "" {
		return "", fmt.Errorf("verify-otp: no access_token in %s", b)
	}
	return pair.AccessToken, nil
}

// redisCommands sums the calls of every command in INFO commandstats, or
// returns -1.
// and the calls of each; nil when INFO fails.
func redisCommands(rdb rueidis.Client) map[string]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := rdb.Do(ctx, rdb.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		return nil
	}
	calls := map[string]int64{}
	for _, line := range strings.Split(s, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		calls[name] = n
	}
	return calls
}

// perRequest is after minus before, per request, less the INFO itself;
// commands a script runs count apart from the EVALSHA that ran it.
func perRequest(before, after map[string]int64, requests int) map[string]float64 {
	if before == nil || after == nil || requests == 0 {
		return nil
	}
	out := map[string]float64{}
	for name, n := range after {
		d := n - before[name]
		if name == "info" {
			d--
		}
		if d > 0 {
			out[name] = float64(d) / float64(requests)
		}
	}
	return out
}

// inLimiterScript are the calls internal/limiter's sliding-log script
// makes inside Redis: commandstats counts them, but they cost no round trip.
var inLimiterScript = map[string]bool{"time": true, "zremrangebyscore": true, "zcard": true,
	"zadd": true, "pexpire": true, "zrange": true}

// roundTrips sums the commands a client sent: everything but the calls
// made inside scripts (which commandstats counts too).
func roundTrips(per map[string]float64, inScripts map[string]bool) float64 {
	var t float64
	for name, v := range per {
		if !inScripts[name] {
			t += v
		}
	}
	return t
}

// server is the running binary.
type server struct {
	cmd           *exec.Cmd
	base, nolimit string
	admin         string
	dir           string
	log           *tailBuffer
	done          chan struct{}
	waitErr       error
	stopOnce      sync.Once
	healthClient  *http.Client
}

func startServer(cfg config, dbURL, redisURL string) (*server, error) {
	bin, err := filepath.Abs(cfg.binary)
	if err != nil {
		return nil, err
	}
	caddyfile, err := filepath.Abs(cfg.caddyfile)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "soulbench-")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	s := &server{
		base:         "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		nolimit:      "http://127.0.0.1:" + strconv.Itoa(ports[1]),
		admin:        "127.0.0.1:" + strconv.Itoa(ports[2]),
		dir:          dir,
		log:          &tailBuffer{max: 64 << 10},
		done:         make(chan struct{}),
		healthClient: &http.Client{Timeout: 2 * time.Second},
	}
	s.cmd = exec.Command(bin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	s.cmd.Dir = dir
	s.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"XDG_DATA_HOME=" + filepath.Join(dir, "data"),
		"ADMIN_ADDRESS=" + s.admin,
		"SITE_ADDRESS=" + s.base,
		"BENCH_NOLIMIT_ADDRESS=" + s.nolimit,
		"DATABASE_URL=" + dbURL,
		"REDIS_URL=" + redisURL,
		"SECRET_KEY=" + randomHex(32),
		"DEV_MODE=true",
		"LOG_LEVEL=INFO",
		"ACCESS_TOKEN_EXPIRE_MINUTES=60",
		// Checked on every request, never refusing one.
		"RATE_LIMIT_DEFAULT_LIMIT=100000000",
		"RATE_LIMIT_DEFAULT_WINDOW=1m",
		// The in-memory shield keeps a slot per event: a high count over a
		// short window rather than a huge one.
		"RATE_LIMIT_SHIELD_EVENTS=100000",
		"RATE_LIMIT_SHIELD_WINDOW=1s",
	}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.waitErr = s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return nil, fmt.Errorf("the binary exited: %v\n%s", s.waitErr, s.log.String())
		default:
		}
		if resp, err := s.healthClient.Get(s.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("the binary did not answer /healthz in 60s:\n%s", s.log.String())
}

func (s *server) stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		_ = os.RemoveAll(s.dir)
	})
}

// peakRSSMB reads the binary's VmHWM, in MiB.
func (s *server) peakRSSMB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// profile fetches a CPU profile from the admin endpoint's /debug/pprof
// while f runs in a closed loop.
func profile(s *server, c *http.Client, cfg config, f op) error {
	secs := max(1, int(cfg.duration.Seconds()))
	type got struct {
		b   []byte
		err error
	}
	ch := make(chan got, 1)
	go func() {
		pc := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
		resp, err := pc.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.admin, secs))
		if err != nil {
			ch <- got{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("pprof: %d %s", resp.StatusCode, b)
		}
		ch <- got{b, err}
	}()
	closedLoop(c, cfg.concurrency, time.Duration(secs)*time.Second+500*time.Millisecond, f)
	g := <-ch
	if g.err != nil {
		return g.err
	}
	return os.WriteFile(cfg.cpuProfile, g.b, 0o644)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func createDatabase(adminURL string) (string, func(), error) {
	name := "soulbench_" + randomHex(6)
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	exec := func(query string) error {
		db, err := sql.Open("pg", adminURL)
		if err != nil {
			return err
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = db.ExecContext(ctx, query)
		return err
	}
	if err := exec(`CREATE DATABASE "` + name + `"`); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	return u.String(), func() { _ = exec(`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`) }, nil
}

// checkLoopback refuses a service URL whose host is not a loopback address.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not on loopback: the bench only loads local services", host)
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// machine describes where the run happened.
func machine() string {
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	n := 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n = strings.Count(string(b), "\nprocessor") + 1
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = ", load average " + strings.Join(strings.Fields(string(b))[:3], " ") + " at the end"
	}
	return fmt.Sprintf("%d CPUs (%s), load generator and server on the same machine%s", n, cpu, load)
}

// describe lists commands per request, most frequent first.
func describe(per map[string]float64) string {
	names := make([]string, 0, len(per))
	for n := range per {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if per[a] != per[b] {
			if per[a] > per[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.2f", n, per[n])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
