//go:build chaos

package chaos_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/mood"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// The soak's settings. Only SOUL_SOAK_DURATION is needed for a run on this
// machine; SOUL_SOAK_BASE_URL aims the same traffic at a running
// deployment (staging) instead.
const (
	envSoakDuration    = "SOUL_SOAK_DURATION"     // a Go duration: 3m, 24h
	envSoakBaseURL     = "SOUL_SOAK_BASE_URL"     // https://api-staging.soulapp.app: start nothing, drive it
	envSoakMetricsURL  = "SOUL_SOAK_METRICS_URL"  // its Prometheus /metrics, required with SOUL_SOAK_BASE_URL
	envSoakTestPhone   = "SOUL_SOAK_TEST_PHONE"   // +15555550100=123456[,...]: OTP_TEST_NUMBERS entries to sign in with
	envSoakDatabaseURL = "SOUL_SOAK_DATABASE_URL" // optional with SOUL_SOAK_BASE_URL: count the API's Postgres connections
	envSoakFloodRate   = "SOUL_SOAK_FLOOD_RATE"   // flood requests a second, overriding the default
)

// TestSoak runs compressed, mixed, realistic traffic for SOUL_SOAK_DURATION
// against one replica of the built binary on Postgres and a Redis of its
// own, all on 127.0.0.1: sign-in flows (signInFlow), journal users writing,
// editing, deleting and paging through moods and exporting them, and floods
// of unauthenticated requests from ever new IPv4 addresses and IPv6 /64s,
// some past the per-IP shield. Redis is killed half way through and started
// again. Every few seconds it samples the binary's resident memory,
// goroutines, open files and Postgres connections; past a warm-up (the
// first quarter of the samples) it fits a least-squares line to each and
// fails when one keeps growing: when the line rises, over the span it was
// fitted on, by more than 10% of the series' mean or its floor (8 MB, 20
// goroutines, 10 files, 3 connections), whichever is larger. It fails too
// on any 5xx or transport failure, during the Redis kill too: sign-in
// answers from memory then, as every route does.
//
// With SOUL_SOAK_BASE_URL it starts nothing and drives that URL instead,
// at a pace the production limits allow from one address, signing in with
// the OTP test numbers of SOUL_SOAK_TEST_PHONE (one for the sign-in flows,
// each further one a journal user), without the Redis kill, and samples
// process_resident_memory_bytes, go_goroutines and process_open_fds from
// SOUL_SOAK_METRICS_URL (and Postgres connections when
// SOUL_SOAK_DATABASE_URL is set).
func TestSoak(t *testing.T) {
	raw := os.Getenv(envSoakDuration)
	if raw == "" {
		t.Skipf("%s is unset (make soak sets it)", envSoakDuration)
	}
	duration, err := time.ParseDuration(raw)
	if err != nil || duration < 30*time.Second {
		t.Fatalf("%s=%q: want a duration of 30s or more", envSoakDuration, raw)
	}
	var tg *soakTarget
	if base := os.Getenv(envSoakBaseURL); base != "" {
		tg = externalSoakTarget(t, base)
	} else {
		tg = localSoakTarget(t)
	}
	run := newSoakRun(t, tg, newSoakPlan(t, tg, duration))
	run.start()
	run.watch()
	run.finish()
	run.report()
}

// soakTarget is what the soak drives and samples.
type soakTarget struct {
	external bool
	base     string
	// Local only: the replica, its Redis and database.
	r     *replica
	redis *testservices.Server
	dbURL string
	// Sampling: the process (local; 0 outside), the metrics endpoint and,
	// when Postgres connections are counted, a connection to the database.
	pid        int
	metricsURL string
	pg         *sql.DB
	// How the sign-in flows and each journal user sign in.
	flowSigner     signer
	journalSigners []signer
}

func localSoakTarget(t *testing.T) *soakTarget {
	t.Helper()
	dbURL := testservices.NewDatabase(t)
	redis := testservices.StartRedis(t)
	// As signInEnv, but with the production shield (300 events per 10 s
	// per address), which the floods' heaviest addresses go past, and
	// exports and the SMS send budgets unlimited, since journal users
	// export far more often than three times an hour here and the flows
	// sign in more new phones in minutes than the budgets allow in an hour. WARN keeps the access log, a line per
	// request, out of the test's memory; errors still show.
	r := startReplica(t, "", "SECRET_KEY="+soultest.RandomHex(32), "DATABASE_URL="+dbURL, "REDIS_URL="+redis.URL(),
		"TRUSTED_PROXIES=127.0.0.1/32", "RATE_LIMIT_DEFAULT_LIMIT=1000000", "RATE_LIMIT_EXPORT_LIMIT=1000000",
		"OTP_SEND_BUDGET_HOURLY=1000000", "OTP_SEND_BUDGET_HOURLY_PER_COUNTRY=1000000", "LOG_LEVEL=WARN")
	r.waitServing(t)
	r.waitHealth(t, "ok")
	pg := openSQL(t, dbURL)
	pg.SetMaxOpenConns(1)
	return &soakTarget{
		base: r.base, r: r, redis: redis, dbURL: dbURL,
		pid: r.cmd.Process.Pid, metricsURL: "http://" + r.admin + "/metrics", pg: pg,
		flowSigner:     previewSigner,
		journalSigners: []signer{previewSigner, previewSigner, previewSigner},
	}
}

func externalSoakTarget(t *testing.T, base string) *soakTarget {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Fatalf("%s=%q: want an http(s) URL", envSoakBaseURL, base)
	}
	metricsURL := os.Getenv(envSoakMetricsURL)
	if metricsURL == "" {
		t.Fatalf("%s is required with %s: the soak judges the service by its metrics", envSoakMetricsURL, envSoakBaseURL)
	}
	var phones [][2]string
	for _, entry := range strings.Split(os.Getenv(envSoakTestPhone), ",") {
		if entry = strings.TrimSpace(entry); entry == "" {
			continue
		}
		p, code, ok := strings.Cut(entry, "=")
		if !ok || len(strings.TrimSpace(code)) != 6 {
			t.Fatalf("%s: entry %d: want +number=123456, as in OTP_TEST_NUMBERS", envSoakTestPhone, len(phones)+1)
		}
		phones = append(phones, [2]string{strings.TrimSpace(p), strings.TrimSpace(code)})
	}
	if len(phones) == 0 {
		t.Fatalf("%s is required with %s: an OTP test number of the deployment, +15555550100=123456", envSoakTestPhone, envSoakBaseURL)
	}
	tg := &soakTarget{external: true, base: strings.TrimRight(base, "/"), metricsURL: metricsURL}
	budget := &codeBudget{sent: map[string][]time.Time{}}
	tg.flowSigner = testPhoneSigner(phones[0][0], phones[0][1], budget)
	for _, p := range phones[1:] {
		tg.journalSigners = append(tg.journalSigners, testPhoneSigner(p[0], p[1], budget))
	}
	if dbURL := os.Getenv(envSoakDatabaseURL); dbURL != "" {
		tg.pg = openSQL(t, dbURL)
		tg.pg.SetMaxOpenConns(1)
	}
	return tg
}

// testPhoneSigner signs in with an OTP test number: always the same
// account, with a fixed code, so a sign-in needs no code request; one is
// made when the budget allows, so that code requests stay in the traffic.
func testPhoneSigner(phone, code string, b *codeBudget) signer {
	same := func() (string, string, error) { return phone, code, nil }
	return signer{
		account:          same,
		again:            func(string, string) (string, string, error) { return same() },
		askCode:          b.take,
		codeMayBeRefused: true,
	}
}

// codeBudget spaces code requests to each test number under the per-phone
// limits (one a minute, ten a day): at most nine a day, evenly.
type codeBudget struct {
	mu   sync.Mutex
	sent map[string][]time.Time
}

func (b *codeBudget) take(phone string) bool {
	const perDay = 9
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	kept := b.sent[phone][:0]
	for _, at := range b.sent[phone] {
		if now.Sub(at) < 24*time.Hour {
			kept = append(kept, at)
		}
	}
	if len(kept) >= perDay || (len(kept) > 0 && now.Sub(kept[len(kept)-1]) < 24*time.Hour/perDay) {
		b.sent[phone] = kept
		return false
	}
	b.sent[phone] = append(kept, now)
	return true
}

// soakPlan is the pace of the traffic.
type soakPlan struct {
	duration     time.Duration
	sampleEvery  time.Duration
	flowWorkers  int
	flowPause    time.Duration // between one worker's flows
	journalPause time.Duration // between one journal user's actions
	journalLife  time.Duration // an account's life before it is deleted and another signed up
	exportEvery  int           // a journal user exports every this many actions
	floodRate    float64       // flood requests a second, all workers together
	floodWorkers int
	floodBurst   int  // an address sends 1 to floodBurst requests
	heavyEvery   int  // one address in heavyEvery sends heavyBurst at once; 0: none
	heavyBurst   int  // past the shield's 300 per 10 s (/healthz, one in six, is not shielded)
	riskyRoutes  bool // flood the per-IP-limited sign-in routes too
	killRedis    bool
}

func newSoakPlan(t *testing.T, tg *soakTarget, duration time.Duration) soakPlan {
	t.Helper()
	clamp := func(d, lo, hi time.Duration) time.Duration { return min(max(d, lo), hi) }
	// The per-IP shield keeps a ring of 300 timestamps (7 KB) for every
	// address it saw in the last minute or so (it sweeps once a minute), so
	// the binary's memory follows the rate of new addresses: the flows
	// (two new ones a second) and the floods (bursts of 30 on average, about
	// three new addresses a second) keep that sawtooth well under the 8 MB
	// floor, so that a leak, not the sweep's period, is what shows.
	p := soakPlan{
		duration:     duration,
		sampleEvery:  clamp(duration/60, 2*time.Second, 30*time.Second),
		flowWorkers:  2,
		flowPause:    500 * time.Millisecond,
		journalPause: 150 * time.Millisecond,
		journalLife:  duration / 3,
		exportEvery:  25,
		floodRate:    100,
		floodWorkers: 4,
		floodBurst:   60,
		heavyEvery:   100,
		heavyBurst:   400,
		riskyRoutes:  true,
		killRedis:    true,
	}
	if tg.external {
		// From one address through the edge, the per-IP limits hold for
		// the whole soak: 10 verifications per 5 minutes (a flow makes
		// two), 10 refreshes a minute, 300 requests per 10 s; exports are
		// 3 an hour per account. The floods stay off the sign-in routes
		// whose per-IP limits the flows need, and name no valid phone.
		p = soakPlan{
			duration:     duration,
			sampleEvery:  clamp(duration/60, 10*time.Second, time.Minute),
			flowWorkers:  1,
			flowPause:    2 * time.Minute,
			journalPause: 5 * time.Second,
			journalLife:  2 * time.Hour,
			exportEvery:  300, // every 25 minutes
			floodRate:    2,
			floodWorkers: 1,
			floodBurst:   5,
		}
	}
	if raw := os.Getenv(envSoakFloodRate); raw != "" {
		r, err := strconv.ParseFloat(raw, 64)
		if err != nil || r <= 0 {
			t.Fatalf("%s=%q: want requests a second", envSoakFloodRate, raw)
		}
		p.floodRate = r
	}
	return p
}

// soakRun is one soak under way.
type soakRun struct {
	t    *testing.T
	tg   *soakTarget
	plan soakPlan

	client *http.Client
	tr     *http.Transport
	began  time.Time
	stop   atomic.Bool
	wg     sync.WaitGroup

	signin, journal, flood tally
	failures               atomic.Int64
	outage                 window
	redisKill              string

	mu        sync.Mutex
	flowNotes []string        // moods of the flows' kept accounts
	liveMoods map[string]bool // moods of the journal users' current accounts

	series      []*soakSeries
	sampleFails atomic.Int64
	starts      map[float64]bool // process_start_time_seconds seen: more than one is a restart
}

func newSoakRun(t *testing.T, tg *soakTarget, plan soakPlan) *soakRun {
	tr := newTransport()
	s := &soakRun{
		t: t, tg: tg, plan: plan, tr: tr,
		client:    &http.Client{Transport: tr, Timeout: 15 * time.Second},
		liveMoods: map[string]bool{},
		starts:    map[float64]bool{},
		series: []*soakSeries{
			{name: "rss_mb", floor: 8},
			{name: "goroutines", floor: 20},
			{name: "open_fds", floor: 10},
			{name: "pg_connections", floor: 3},
		},
	}
	return s
}

// window is a span of time, open at its end while to is zero.
type window struct{ from, to atomic.Int64 }

// failed counts a step that did not answer as it should.
func (s *soakRun) failed(actor string, f *stepFailure) {
	if s.failures.Add(1) <= 5 {
		s.t.Errorf("%s: %v", actor, f)
	}
}

func (s *soakRun) start() {
	s.began = time.Now()
	for w := 0; w < s.plan.flowWorkers; w++ {
		s.wg.Add(1)
		go s.flows(w)
	}
	for k, sg := range s.tg.journalSigners {
		s.wg.Add(1)
		go s.journalUser(k, sg)
	}
	for w := 0; w < s.plan.floodWorkers; w++ {
		s.wg.Add(1)
		go s.floods()
	}
}

// pause sleeps for d, or less when the soak stops.
func (s *soakRun) pause(d time.Duration) {
	for end := time.Now().Add(d); !s.stop.Load(); {
		left := time.Until(end)
		if left <= 0 {
			return
		}
		time.Sleep(min(left, 200*time.Millisecond))
	}
}

// flows runs sign-in flows, each from an address of its own.
func (s *soakRun) flows(w int) {
	defer s.wg.Done()
	for i := 0; !s.stop.Load(); i++ {
		c := newAPIClient(s.tg.base, s.client, flowAddr(), &s.signin)
		out := c.signInFlow(s.tg.flowSigner, fmt.Sprintf("soak-f%d-%d", w, i))
		if out.failed != nil {
			s.failed("signin", out.failed)
		} else if out.note != "" && !s.tg.external {
			s.mu.Lock()
			s.flowNotes = append(s.flowNotes, out.note)
			s.mu.Unlock()
		}
		s.pause(s.plan.flowPause)
	}
}

// journalUser is one person keeping a journal from one address: mostly
// new moods, some edits and deletions, pages of the list, now and then an
// export; the access token is refreshed before it expires, and the account
// is deleted after journalLife and another one signed up.
func (s *soakRun) journalUser(k int, sg signer) {
	defer s.wg.Done()
	c := newAPIClient(s.tg.base, s.client, flowAddr(), &s.journal)
	var (
		pair   soulauth.TokenPair
		since  time.Time // the account's sign-up
		issued time.Time // the access token's
		ids    []string  // the account's moods, oldest first
	)
	fail := func(f *stepFailure) {
		s.failed(fmt.Sprintf("journal %d", k), f)
		s.pause(time.Second)
	}
	for n := 0; !s.stop.Load(); n++ {
		if pair.AccessToken != "" && time.Since(since) > s.plan.journalLife {
			start := time.Now()
			a := c.do("delete_me", http.MethodDelete, soulauth.PathMe, pair.AccessToken, nil)
			if f := a.expect("delete_me", start, http.StatusNoContent); f != nil {
				fail(f)
				continue
			}
			s.forgetMoods(ids)
			pair, ids = soulauth.TokenPair{}, nil
		}
		if pair.AccessToken == "" {
			phone, code, err := sg.account()
			if err != nil {
				fail(&stepFailure{step: "account", at: time.Now(), err: err})
				continue
			}
			var f *stepFailure
			if pair, f = c.signIn(sg, phone, code); f != nil {
				fail(f)
				continue
			}
			since, issued = time.Now(), time.Now()
		}
		if time.Since(issued) > 10*time.Minute {
			start := time.Now()
			a := c.do("refresh", http.MethodPost, soulauth.PathRefresh, "", map[string]string{"refresh_token": pair.RefreshToken})
			if f := a.expect("refresh", start, http.StatusOK); f != nil {
				fail(f)
				pair = soulauth.TokenPair{} // sign in again
				continue
			}
			if err := json.Unmarshal(a.body, &pair); err != nil {
				fail(a.failure("refresh", start, http.StatusOK, err))
				pair = soulauth.TokenPair{}
				continue
			}
			issued = time.Now()
		}
		if f := s.journalAction(c, k, n, pair.AccessToken, &ids); f != nil {
			fail(f)
		}
		s.pause(s.plan.journalPause)
	}
}

// journalAction is the n-th action of a journal user.
func (s *soakRun) journalAction(c *apiClient, k, n int, token string, ids *[]string) *stepFailure {
	start := time.Now()
	switch {
	case n%s.plan.exportEvery == s.plan.exportEvery-1:
		return c.export(token, "")
	case n%15 == 14 && len(*ids) > 5:
		id := (*ids)[0]
		a := c.do("mood_delete", http.MethodDelete, "/api/moods/"+id, token, nil)
		if f := a.expect("mood_delete", start, http.StatusNoContent); f != nil {
			return f
		}
		*ids = (*ids)[1:]
		s.forgetMoods([]string{id})
	case n%10 == 9 && len(*ids) > 0:
		id := (*ids)[rand.IntN(len(*ids))]
		score := mood.MinScore + rand.IntN(mood.MaxScore-mood.MinScore+1)
		a := c.do("mood_patch", http.MethodPatch, "/api/moods/"+id, token, map[string]int{"score": score})
		return a.expect("mood_patch", start, http.StatusOK)
	case n%4 == 3:
		// The first page, and up to two more through the Link header.
		path, step := "/api/moods?limit=20", "moods"
		for page := 0; page < 3 && path != ""; page++ {
			start = time.Now()
			a := c.do(step, http.MethodGet, path, token, nil)
			if f := a.expect(step, start, http.StatusOK); f != nil {
				return f
			}
			path, step = nextLink(a.header.Get("Link")), "moods_page"
		}
	default:
		req := moodRequest(c.base, token, fmt.Sprintf("soak-j%d-%d", k, n))
		a := c.send("mood", req)
		if f := a.expect("mood", start, http.StatusCreated); f != nil {
			return f
		}
		id := moodID(a.body)
		*ids = append(*ids, id)
		if !s.tg.external {
			s.mu.Lock()
			s.liveMoods[id] = true
			s.mu.Unlock()
		}
	}
	return nil
}

func (s *soakRun) forgetMoods(ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		delete(s.liveMoods, id)
	}
}

// nextLink returns the path of a Link header's rel="next", "" when none.
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if ok && strings.Contains(params, `rel="next"`) {
			return strings.Trim(strings.TrimSpace(target), "<>")
		}
	}
	return ""
}

// floodRoute is one kind of unauthenticated request a flood sends.
type floodRoute struct {
	step, method, path string
	body               func() any
	risky              bool // a per-IP sign-in limit counts it
}

var floodRoutes = []floodRoute{
	{step: "flood_healthz", method: http.MethodGet, path: "/healthz"},
	{step: "flood_moods", method: http.MethodGet, path: "/api/moods"},
	{step: "flood_not_found", method: http.MethodGet, path: "/nope"},
	{step: "flood_otp_invalid", method: http.MethodPost, path: soulauth.PathOTPRequest,
		body: func() any { return map[string]string{"phone": "+1 555"} }},
	{step: "flood_verify", method: http.MethodPost, path: soulauth.PathVerifyOTP, risky: true,
		body: func() any {
			p, _ := newPhone()
			return map[string]string{"phone": p, "code": "000000"}
		}},
	{step: "flood_refresh", method: http.MethodPost, path: soulauth.PathRefresh, risky: true,
		body: func() any { return map[string]string{"refresh_token": "rt_" + soultest.RandomHex(16)} }},
}

// floods sends the worker's share of floodRate, each address a short
// burst, now and then one far past the shield at once; the API document
// (60 KB) is one request in fifty.
func (s *soakRun) floods() {
	defer s.wg.Done()
	var routes []floodRoute
	for _, r := range floodRoutes {
		if s.plan.riskyRoutes || !r.risky {
			routes = append(routes, r)
		}
	}
	interval := time.Duration(float64(time.Second) * float64(s.plan.floodWorkers) / s.plan.floodRate)
	next := time.Now()
	for !s.stop.Load() {
		c := newAPIClient(s.tg.base, s.client, floodAddr(), &s.flood)
		n, heavy := 1+rand.IntN(s.plan.floodBurst), s.plan.heavyEvery > 0 && rand.IntN(s.plan.heavyEvery) == 0
		if heavy {
			n = s.plan.heavyBurst
		}
		for i := 0; i < n && !s.stop.Load(); i++ {
			r := routes[rand.IntN(len(routes))]
			if rand.IntN(50) == 0 {
				r = floodRoute{step: "flood_openapi", method: http.MethodGet, path: "/api/openapi.json"}
			}
			var body any
			if r.body != nil {
				body = r.body()
			}
			start := time.Now()
			a := c.do(r.step, r.method, r.path, "", body)
			if a.err != nil || a.status >= 500 {
				s.failed("flood", a.failure(r.step, start, 0, nil))
			}
			if heavy {
				continue
			}
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			} else if d < -time.Second {
				next = time.Now() // behind: do not catch up in a burst
			}
		}
	}
}

// watch samples until the soak's end, killing Redis half way through.
func (s *soakRun) watch() {
	end := s.began.Add(s.plan.duration)
	killAt := s.began.Add(s.plan.duration / 2)
	tick := time.NewTicker(s.plan.sampleEvery)
	defer tick.Stop()
	s.sample()
	for time.Now().Before(end) {
		<-tick.C
		if s.plan.killRedis && s.redisKill == "" && time.Now().After(killAt) {
			s.killRedis()
		}
		s.sample()
	}
}

// killRedis kills Redis, keeps it away for outageLength and starts it
// again; the outage window runs until /healthz says ok, plus the limiter's
// back-off and some.
func (s *soakRun) killRedis() {
	t, r := s.t, s.tg.r
	at := time.Since(s.began)
	s.outage.from.Store(time.Now().UnixNano())
	s.tg.redis.Kill()
	degraded := healthWithin(r, "degraded", 10*time.Second)
	time.Sleep(outageLength)
	s.tg.redis.Start()
	ok := healthWithin(r, "ok", 30*time.Second)
	s.outage.to.Store(time.Now().Add(3 * time.Second).UnixNano())
	back := backOnRedis(t, r)
	clock := func(w *atomic.Int64) string { return time.Unix(0, w.Load()).Format("15:04:05.000") }
	s.redisKill = fmt.Sprintf("Redis killed at %s for %s: degraded=%t ok_after=%t back_on_redis=%t (away from %s to %s)",
		at.Round(time.Second), outageLength, degraded, ok, back, clock(&s.outage.from), clock(&s.outage.to))
	if !degraded || !ok || !back {
		t.Errorf("Redis kill: /healthz degraded while away %t, ok after %t, decisions back on Redis %t", degraded, ok, back)
	}
}

// finish stops the traffic and waits for the requests under way.
func (s *soakRun) finish() {
	s.stop.Store(true)
	s.wg.Wait()
	s.tr.CloseIdleConnections()
}

// soakSeries is one sampled quantity.
type soakSeries struct {
	name  string
	floor float64 // the least growth that counts as growing
	at    []float64
	v     []float64
}

func (ss *soakSeries) add(at time.Duration, v float64) {
	ss.at = append(ss.at, at.Seconds())
	ss.v = append(ss.v, v)
}

// sample reads each series once; a reading that fails is left out.
func (s *soakRun) sample() {
	at := time.Since(s.began)
	got := map[string]float64{}
	var errs []string
	metrics, err := s.fetchMetrics()
	if err != nil {
		errs = append(errs, err.Error())
	}
	if v, ok := promValue(metrics, "go_goroutines"); ok {
		got["goroutines"] = v
	}
	if v, ok := promValue(metrics, "process_start_time_seconds"); ok {
		s.starts[v] = true
	}
	if s.tg.pid != 0 {
		if v, err := procRSS(s.tg.pid); err == nil {
			got["rss_mb"] = v / (1 << 20)
		} else {
			errs = append(errs, err.Error())
		}
		if entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.tg.pid)); err == nil {
			got["open_fds"] = float64(len(entries))
		} else {
			errs = append(errs, err.Error())
		}
	} else {
		if v, ok := promValue(metrics, "process_resident_memory_bytes"); ok {
			got["rss_mb"] = v / (1 << 20)
		}
		if v, ok := promValue(metrics, "process_open_fds"); ok {
			got["open_fds"] = v
		}
	}
	if s.tg.pg != nil {
		var n int
		err := s.tg.pg.QueryRow(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'soul'`).Scan(&n)
		if err == nil {
			got["pg_connections"] = float64(n)
		} else {
			errs = append(errs, err.Error())
		}
	}
	for _, ss := range s.series {
		if v, ok := got[ss.name]; ok {
			ss.add(at, v)
		}
	}
	if len(errs) > 0 && s.sampleFails.Add(1) <= 3 {
		s.t.Logf("soak: sample at %s: %s", at.Round(time.Second), strings.Join(errs, "; "))
	}
}

func (s *soakRun) fetchMetrics() (string, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(s.tg.metricsURL)
	if err != nil {
		return "", fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("metrics: %d %v", resp.StatusCode, err)
	}
	return string(b), nil
}

// promValue reads the first sample of a metric in a Prometheus text
// exposition, labelled or not, a timestamp after it or not (as a
// federation endpoint answers).
func promValue(text, name string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if rest[0] == '{' {
			_, rest, ok = strings.Cut(rest, "}")
			if !ok {
				continue
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		return v, err == nil
	}
	return 0, false
}

// procRSS reads a process's resident memory (VmRSS) in bytes.
func procRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// trend returns up to n of the samples, evenly spaced, first and last
// included, to show the series' shape.
func (ss *soakSeries) trend(n int) string {
	if len(ss.v) == 0 {
		return ""
	}
	n = min(n, len(ss.v))
	parts := make([]string, 0, n)
	for i := 0; i < n; i++ {
		j := 0
		if n > 1 {
			j = i * (len(ss.v) - 1) / (n - 1)
		}
		parts = append(parts, strconv.FormatFloat(ss.v[j], 'f', 0, 64))
	}
	return strings.Join(parts, " ")
}

// soakFit is a series' line past the warm-up.
type soakFit struct {
	measured                       int     // samples fitted
	span                           float64 // seconds between the first and last fitted
	slope                          float64 // per second
	first, last, max, mean, growth float64
	limit                          float64
}

func (f soakFit) growing() bool { return f.growth > f.limit }

// fit fits a least-squares line to the samples after the first quarter.
func (ss *soakSeries) fit() (soakFit, bool) {
	skip := int(math.Ceil(float64(len(ss.v)) * 0.25))
	x, y := ss.at[min(skip, len(ss.at)):], ss.v[min(skip, len(ss.v)):]
	if len(y) < 4 {
		return soakFit{measured: len(y)}, false
	}
	f := soakFit{measured: len(y), first: ss.v[0], last: ss.v[len(ss.v)-1], max: ss.v[0]}
	for _, v := range ss.v {
		f.max = math.Max(f.max, v)
	}
	var mx, my float64
	for i := range y {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(y))
	my /= float64(len(y))
	var sxy, sxx float64
	for i := range y {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
	}
	if sxx > 0 {
		f.slope = sxy / sxx
	}
	f.mean = my
	f.span = x[len(x)-1] - x[0]
	f.growth = f.slope * f.span
	f.limit = math.Max(0.10*f.mean, ss.floor)
	return f, true
}

// report prints the figures and fails on growth and failures.
func (s *soakRun) report() {
	t := s.t
	lost, checked := s.lostWrites()
	var b strings.Builder
	where := "one replica of the built binary, its own Postgres database and Redis, on 127.0.0.1"
	if s.tg.external {
		where = s.tg.base + ", metrics from " + s.tg.metricsURL
	}
	fmt.Fprintf(&b, "soak: %s of mixed traffic against %s\n", s.plan.duration, where)
	if s.redisKill != "" {
		fmt.Fprintf(&b, "  %s\n", s.redisKill)
	}
	samples := 0
	for _, ss := range s.series {
		samples = max(samples, len(ss.v))
	}
	fmt.Fprintf(&b, "  %d samples, one every %s; lines fitted past the warm-up (the first 25%% of the samples)\n", samples, s.plan.sampleEvery)
	fmt.Fprintf(&b, "  %-15s %10s %10s %10s %10s %10s %10s  %s  %s\n", "series", "slope/min", "first", "last", "max", "growth", "limit", "verdict", "[samples, evenly picked]")
	var slopes []string
	var growing []string
	for _, ss := range s.series {
		f, ok := ss.fit()
		if !ok {
			fmt.Fprintf(&b, "  %-15s %10s (%d samples fitted: too few)\n", ss.name, "n/a", f.measured)
			if ss.name != "pg_connections" || s.tg.pg != nil {
				t.Errorf("%s: only %d samples past the warm-up; run longer", ss.name, f.measured)
			}
			continue
		}
		verdict := "ok"
		if f.growing() {
			verdict = "GROWING"
			growing = append(growing, fmt.Sprintf("%s rose %+.1f over %s (more than %.1f: max of 10%% of its mean %.1f and %.0f)",
				ss.name, f.growth, time.Duration(f.span*float64(time.Second)).Round(time.Second), f.limit, f.mean, ss.floor))
		}
		fmt.Fprintf(&b, "  %-15s %+10.2f %10.1f %10.1f %10.1f %+10.1f %10.1f  %s  [%s]\n",
			ss.name, f.slope*60, f.first, f.last, f.max, f.growth, f.limit, verdict, ss.trend(12))
		slopes = append(slopes, fmt.Sprintf("%s_per_min=%+.2f", ss.name, f.slope*60))
	}
	sent := s.signin.sent() + s.journal.sent() + s.flood.sent()
	fmt.Fprintf(&b, "  requests: sent=%d failures=%d lost_writes=%s\n",
		sent, s.failures.Load(), map[bool]string{true: strconv.FormatInt(lost, 10), false: "not checked"}[checked])
	fmt.Fprintf(&b, "  signin:  %s\n", s.signin.String())
	fmt.Fprintf(&b, "  journal: %s\n", s.journal.String())
	fmt.Fprintf(&b, "  flood:   %s", s.flood.String())
	t.Logf("%s", b.String())
	figures(t, "soak", sent, s.failures.Load(), lost,
		fmt.Sprintf("lost_writes_checked=%t %s", checked, strings.Join(slopes, " ")))
	if len(s.starts) > 1 {
		t.Errorf("the service restarted during the soak (%d process start times in its metrics): the samples mix processes", len(s.starts))
	}
	if s.tg.r != nil {
		select {
		case <-s.tg.r.done:
			t.Errorf("the replica exited during the soak: %v\n%s", s.tg.r.exitErr, tail(s.tg.r.log.String(), 20))
		default:
		}
	}
	for _, g := range growing {
		t.Errorf("keeps growing: %s", g)
	}
	if n := s.failures.Load(); n > 0 {
		t.Errorf("%d requests failed (5xx, no answer, or not the answer the step wants)", n)
		if s.tg.r != nil {
			t.Logf("the replica's last error lines:\n%s", errorLines(s.tg.r.log.String(), 20))
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged moods are not in the database", lost)
	}
}

// errorLines returns the last n lines of a log at level error or above.
func errorLines(log string, n int) string {
	var lines []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"fatal"`) || strings.Contains(line, `"level":"panic"`) {
			lines = append(lines, line)
		}
	}
	return tail(strings.Join(lines, "\n"), n)
}

// lostWrites counts the acknowledged moods of accounts still there that
// are not in the database (local runs only).
func (s *soakRun) lostWrites() (int64, bool) {
	if s.tg.external {
		return 0, false
	}
	db := openSQL(s.t, s.tg.dbURL)
	ids, notes := idsInDB(s.t, db), notesInDB(s.t, db)
	s.mu.Lock()
	defer s.mu.Unlock()
	var lost int64
	for id := range s.liveMoods {
		if !ids[id] {
			lost++
		}
	}
	for _, n := range s.flowNotes {
		if notes[n] == 0 {
			lost++
		}
	}
	return lost, true
}
