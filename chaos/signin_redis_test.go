//go:build chaos

package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/rueidis"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/phone"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// The whole sign-in flow, not only mood writes, through Redis outages:
// Redis killed and started again, Redis frozen (SIGSTOP: calls time out
// instead of being refused), and Redis unreachable when the binary
// starts. Every step of every flow answers as it does with Redis up, none
// is a 5xx or fails on the wire; /healthz says degraded while Redis is
// away and ok after; limit decisions go back to Redis by themselves; and
// an account deleted while Redis was away leaves no limiter entry in Redis
// once it is back.
//
// The flow, its tally of answers, client addresses, phones and the storage
// keys of an account's limits are shared with the soak (soak_test.go).

// signInEnv is the replica environment for sign-in traffic: each flow comes
// from an address of its own, which only a trusted proxy may name, so the
// per-IP sign-in limits (5 code requests and 10 verifications per 5
// minutes, 10 refreshes a minute) never refuse a flow, and each flow signs
// in phones of its own, past the one code a minute per phone. The default
// policy and the shield are out of the way (noLimits).
func signInEnv(env ...string) []string {
	return append(append([]string{"TRUSTED_PROXIES=127.0.0.1/32"}, noLimits...), env...)
}

// signInWorkers is how many flows run at once.
const signInWorkers = 4

// outageLength is how long Redis stays away in each scenario.
const outageLength = 5 * time.Second

// Redis up: the baseline every outage is held to. Also checks that the
// keys computed here are the ones the binary writes (a signed-out
// account's are in Redis) and that an account deleted with Redis up
// leaves none.
func TestSignInRedisUp(t *testing.T) {
	s := startSignInScenario(t)
	load := startSignInLoad(t, s.r, signInWorkers)
	time.Sleep(4 * time.Second)
	load.finish()

	keys := s.keys(t)
	kept, found := 0, 0
	for _, acc := range load.lastKept(5) {
		for _, rule := range []string{"otp_send_day", "default", "export"} {
			kept++
			if s.exists(t, keys.of(acc)[rule]) {
				found++
			}
		}
	}
	deleted := load.deletedBetween(time.Time{}, time.Now())
	left := s.keysLeft(t, keys, deleted)
	local := decisions(t, s.r, "local")
	lost := load.lostWrites(t, s.dbURL)
	figures(t, "signin-redis-up", load.c.sent(), load.failures.Load(), lost,
		fmt.Sprintf("flows=%d completed=%d %s decisions_redis=%.0f decisions_local=%.0f kept_keys_found=%d/%d deleted=%d keys_left=%d accounts_left=%d",
			load.flows.Load(), load.completed.Load(), load.c.String(), decisions(t, s.r, "redis"), local,
			found, kept, len(deleted), len(left), accountsLeft(t, s.dbURL, deleted)))
	if load.completed.Load() == 0 {
		t.Fatal("no flow completed")
	}
	if found != kept {
		t.Errorf("%d of %d limiter keys of signed-out accounts are not in Redis: the keys computed here are not the binary's", kept-found, kept)
	}
	if local > 0 {
		t.Errorf("%.0f limit decisions in memory with Redis up", local)
	}
	load.check(t, lost, left)
}

// Redis is killed (SIGKILL) under sign-in traffic and started again, empty.
func TestSignInRedisKill(t *testing.T) {
	s := startSignInScenario(t)
	s.outage(t, "signin-redis-kill", s.redis.Kill, s.redis.Start)
}

// Redis is frozen with SIGSTOP: its port still accepts connections but
// nothing answers, so every call waits for its timeout. It goes on with
// SIGCONT, its data intact, and runs the commands sent meanwhile.
func TestSignInRedisPause(t *testing.T) {
	s := startSignInScenario(t)
	s.outage(t, "signin-redis-pause", s.redis.Pause, s.redis.Resume)
}

// Redis is unreachable when the binary starts: it serves from memory, then
// goes to Redis by itself once Redis is there.
func TestSignInRedisDownAtStart(t *testing.T) {
	redis := testservices.StartRedis(t)
	redis.Stop()
	s := startSignInScenarioWith(t, redis)
	degraded := healthWithin(s.r, "degraded", 10*time.Second)
	down := time.Now()
	load := startSignInLoad(t, s.r, signInWorkers)
	time.Sleep(outageLength + time.Second)
	fellBack := decisions(t, s.r, "local") > 0
	up := time.Now()
	redis.Start()
	s.after(t, "signin-redis-start", load, down, up, degraded, fellBack, nil)
}

// signInScenario is one replica on its own Redis and database.
type signInScenario struct {
	r      *replica
	redis  *testservices.Server
	dbURL  string
	secret string
	rc     rueidis.Client // for checks, once Redis is up
}

func startSignInScenario(t *testing.T) *signInScenario {
	t.Helper()
	s := startSignInScenarioWith(t, testservices.StartRedis(t))
	s.r.waitHealth(t, "ok")
	return s
}

// startSignInScenarioWith starts the replica on redis, running or not.
func startSignInScenarioWith(t *testing.T, redis *testservices.Server) *signInScenario {
	t.Helper()
	s := &signInScenario{redis: redis, dbURL: testservices.NewDatabase(t), secret: soultest.RandomHex(32)}
	s.r = startReplica(t, "", signInEnv("SECRET_KEY="+s.secret, "DATABASE_URL="+s.dbURL, "REDIS_URL="+redis.URL())...)
	s.r.waitServing(t)
	return s
}

// outage runs flows on Redis for a moment, takes Redis away with down
// while a signed-in account (the victim, whose entries are all in Redis)
// is deleted and flows go on, brings it back with up, and checks the
// outcome.
func (s *signInScenario) outage(t *testing.T, scenario string, down, up func()) {
	t.Helper()
	load := startSignInLoad(t, s.r, signInWorkers)
	time.Sleep(2 * time.Second)

	victim := newAPIClient(s.r.base, s.r.client, flowAddr(), &load.c)
	acc, token, f := victim.signedInWithEntries(previewSigner)
	if f != nil {
		load.finish()
		t.Fatalf("victim: %v", f)
	}
	keys := s.keys(t)
	for _, rule := range []string{"otp_send", "otp_send_day", "default", "export"} {
		if !s.exists(t, keys.of(acc)[rule]) {
			t.Errorf("victim: no %s entry in Redis before the outage", rule)
		}
	}

	localBefore := decisions(t, s.r, "local")
	down()
	downAt := time.Now()
	degraded := healthWithin(s.r, "degraded", 10*time.Second)
	start := time.Now()
	a := victim.do("delete_me", http.MethodDelete, soulauth.PathMe, token, nil)
	if a.status == http.StatusNoContent {
		load.addDeleted(deletedAccount{account: acc, start: start, end: time.Now()})
	} else {
		load.failed(a.failure("delete_me", start, http.StatusNoContent, nil))
	}
	time.Sleep(time.Until(downAt.Add(outageLength)))
	fellBack := decisions(t, s.r, "local") > localBefore
	upAt := time.Now()
	up()
	s.after(t, scenario, load, downAt, upAt, degraded, fellBack, &acc)
}

// after checks a scenario once Redis is back (up is when it was brought
// back): /healthz ok, decisions on Redis again, then, with the flows
// stopped, that the accounts deleted between down and up left no entry in
// Redis and that every acknowledged mood is stored.
func (s *signInScenario) after(t *testing.T, scenario string, load *signInLoad, down, up time.Time, degraded, fellBack bool, victim *account) {
	t.Helper()
	ok := healthWithin(s.r, "ok", 30*time.Second)
	back := backOnRedis(t, s.r)
	time.Sleep(time.Second)
	load.finish()

	deleted := load.deletedBetween(down, up)
	left := s.keysLeft(t, s.keys(t), deleted)
	lost := load.lostWrites(t, s.dbURL)
	logged := strings.Contains(s.r.log.String(), "rate limits fell back to per-instance memory")
	figures(t, scenario, load.c.sent(), load.failures.Load(), lost,
		fmt.Sprintf("flows=%d completed=%d %s healthz_degraded=%t healthz_ok_after=%t fell_back=%t fallback_logged=%t returned=%t decisions_redis=%.0f decisions_local=%.0f deleted_while_down=%d keys_left=%d accounts_left=%d",
			load.flows.Load(), load.completed.Load(), load.c.String(), degraded, ok, fellBack, logged, back,
			decisions(t, s.r, "redis"), decisions(t, s.r, "local"), len(deleted), len(left), accountsLeft(t, s.dbURL, deleted)))
	if !degraded {
		t.Error("/healthz did not say degraded while Redis was away")
	}
	if !ok {
		t.Error("/healthz did not say ok once Redis was back")
	}
	if !fellBack {
		t.Error("no limit decision in memory while Redis was away")
	}
	if !back {
		t.Error("limit decisions did not go back to Redis by themselves")
	}
	if len(deleted) == 0 {
		t.Error("no account was deleted while Redis was away")
	}
	if victim != nil && !containsAccount(deleted, *victim) {
		t.Error("the victim account was not deleted while Redis was away")
	}
	load.check(t, lost, left)
}

// keys returns the key calculator of the scenario's replica.
func (s *signInScenario) keys(t *testing.T) *limiterKeys {
	t.Helper()
	return newLimiterKeys(t, s.secret)
}

// exists says whether Redis holds key; it connects once Redis is up.
func (s *signInScenario) exists(t *testing.T, key string) bool {
	t.Helper()
	if s.rc == nil {
		s.rc = testservices.RedisClient(t, s.redis.URL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := s.rc.Do(ctx, s.rc.B().Exists().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatalf("EXISTS: %v", err)
	}
	return n == 1
}

// keysLeft returns the limiter entries of the deleted accounts that Redis
// still holds, as "rule of user".
func (s *signInScenario) keysLeft(t *testing.T, keys *limiterKeys, deleted []deletedAccount) []string {
	t.Helper()
	var left []string
	for _, d := range deleted {
		for rule, key := range keys.of(d.account) {
			if s.exists(t, key) {
				left = append(left, rule+" of "+d.userID)
			}
		}
	}
	if len(left) > 0 {
		sort.Strings(left)
		t.Logf("limiter entries of deleted accounts still in Redis: %s", strings.Join(left, ", "))
	}
	return left
}

// decisions sums soul_rate_limit_decisions_total over every policy and
// sign-in rule answered from storage ("redis" or "local").
func decisions(t *testing.T, r *replica, storage string) float64 {
	t.Helper()
	return r.metric(t, "soul_rate_limit_decisions_total", `storage="`+storage+`"`)
}

// backOnRedis waits up to 30 s for a whole second in which limit decisions
// were made on Redis and none in memory (after a failure the limiter
// skips Redis for a back-off). The flows must be running.
func backOnRedis(t *testing.T, r *replica) bool {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		onRedis, inMemory := decisions(t, r, "redis"), decisions(t, r, "local")
		time.Sleep(time.Second)
		if decisions(t, r, "redis") > onRedis && decisions(t, r, "local") == inMemory {
			return true
		}
	}
	return false
}

// healthWithin polls /healthz until it reports want, for up to d.
func healthWithin(r *replica, want string, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; {
		if r.health() == want {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// accountsLeft counts the deleted accounts still in the users table.
func accountsLeft(t *testing.T, dbURL string, deleted []deletedAccount) int {
	t.Helper()
	if len(deleted) == 0 {
		return 0
	}
	ids := make([]string, 0, len(deleted))
	for _, d := range deleted {
		id, err := uuid.Parse(d.userID)
		if err != nil {
			t.Fatalf("user id %q: %v", d.userID, err)
		}
		ids = append(ids, "'"+id.String()+"'")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	if err := openSQL(t, dbURL).QueryRowContext(ctx, "SELECT count(*) FROM users WHERE id IN ("+strings.Join(ids, ",")+")").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// --- The sign-in load of the scenarios ---

// signInLoad runs sign-in flows in workers until finish, each flow from an
// address of its own, with new phones.
type signInLoad struct {
	t *testing.T
	c tally

	flows, completed, failures atomic.Int64

	mu      sync.Mutex
	notes   []string
	kept    []account
	deleted []deletedAccount

	stop atomic.Bool
	wg   sync.WaitGroup
	tr   *http.Transport
}

func startSignInLoad(t *testing.T, r *replica, workers int) *signInLoad {
	t.Helper()
	l := &signInLoad{t: t, tr: newTransport()}
	client := &http.Client{Transport: l.tr, Timeout: 15 * time.Second}
	var seq atomic.Int64
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for !l.stop.Load() {
				l.flows.Add(1)
				c := newAPIClient(r.base, client, flowAddr(), &l.c)
				out := c.signInFlow(previewSigner, fmt.Sprintf("signin-%d", seq.Add(1)))
				l.record(out)
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return l
}

// finish stops the flows and waits for those under way.
func (l *signInLoad) finish() {
	l.stop.Store(true)
	l.wg.Wait()
	l.tr.CloseIdleConnections()
}

func (l *signInLoad) record(out flowOutcome) {
	l.mu.Lock()
	if out.note != "" {
		l.notes = append(l.notes, out.note)
	}
	if out.kept.userID != "" {
		l.kept = append(l.kept, out.kept)
	}
	if out.deleted != nil {
		l.deleted = append(l.deleted, *out.deleted)
	}
	l.mu.Unlock()
	if out.failed != nil {
		l.failed(out.failed)
		return
	}
	l.completed.Add(1)
}

// failed counts a step that did not answer as it should, and reports the
// first few.
func (l *signInLoad) failed(f *stepFailure) {
	if l.failures.Add(1) <= 3 {
		l.t.Errorf("%v", f)
	}
}

func (l *signInLoad) addDeleted(d deletedAccount) {
	l.mu.Lock()
	l.deleted = append(l.deleted, d)
	l.mu.Unlock()
}

// deletedBetween returns the accounts whose DELETE was sent at from or
// later and answered by to.
func (l *signInLoad) deletedBetween(from, to time.Time) []deletedAccount {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ds []deletedAccount
	for _, d := range l.deleted {
		if !d.start.Before(from) && !d.end.After(to) {
			ds = append(ds, d)
		}
	}
	return ds
}

// lastKept returns up to n of the last signed-out accounts.
func (l *signInLoad) lastKept(n int) []account {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.kept) < n {
		n = len(l.kept)
	}
	return append([]account(nil), l.kept[len(l.kept)-n:]...)
}

// lostWrites counts the acknowledged moods that are not in the database.
func (l *signInLoad) lostWrites(t *testing.T, dbURL string) int64 {
	t.Helper()
	stored := notesInDB(t, openSQL(t, dbURL))
	l.mu.Lock()
	defer l.mu.Unlock()
	var lost int64
	for _, n := range l.notes {
		if stored[n] == 0 {
			lost++
		}
	}
	return lost
}

// check fails the test on any failure, lost write or entry left behind.
func (l *signInLoad) check(t *testing.T, lost int64, left []string) {
	t.Helper()
	if n := l.failures.Load(); n > 0 {
		t.Errorf("%d flows broke: %s", n, l.c.String())
	}
	if lost > 0 {
		t.Errorf("%d acknowledged moods are not in the database", lost)
	}
	if len(left) > 0 {
		t.Errorf("%d limiter entries of deleted accounts are still in Redis", len(left))
	}
}

func containsAccount(ds []deletedAccount, acc account) bool {
	for _, d := range ds {
		if d.account == acc {
			return true
		}
	}
	return false
}

// --- Shared with the soak: the flow ---

// account is one signed-up user.
type account struct{ phone, userID string }

// deletedAccount is an account that DELETE /api/me removed: the request
// was sent at start and answered 204 at end.
type deletedAccount struct {
	account
	start, end time.Time
}

// stepFailure is a step that did not answer as it should: a status other
// than want (0: no answer, with err) or a body that does not hold what it
// should.
type stepFailure struct {
	step   string
	at     time.Time // when the request was sent
	status int
	want   int // 0: any answer below 500
	body   string
	err    error
}

func (f *stepFailure) Error() string {
	switch {
	case f.err != nil && f.status == 0:
		return fmt.Sprintf("%s (sent %s): %v", f.step, f.at.Format("15:04:05.000"), f.err)
	case f.err != nil:
		return fmt.Sprintf("%s (sent %s): %d: %v: %s", f.step, f.at.Format("15:04:05.000"), f.status, f.err, f.body)
	}
	if f.want == 0 {
		return fmt.Sprintf("%s (sent %s): %d, want an answer below 500: %s", f.step, f.at.Format("15:04:05.000"), f.status, f.body)
	}
	return fmt.Sprintf("%s (sent %s): %d, want %d: %s", f.step, f.at.Format("15:04:05.000"), f.status, f.want, f.body)
}

// flowOutcome is what one sign-in flow did.
type flowOutcome struct {
	failed  *stepFailure    // the step that broke the flow; nil when all answered as they should
	note    string          // the note of the mood written, once acknowledged
	kept    account         // the first account, signed out at the end
	deleted *deletedAccount // the account the flow deleted
}

// signer is how flows get accounts and their codes.
type signer struct {
	// account returns the phone of a new sign-in and its fixed code, or ""
	// when the code comes back as preview_code (DEV_MODE's local codes).
	account func() (phone, code string, err error)
	// again returns the phone and code of a flow's second sign-in.
	again func(phone, code string) (string, string, error)
	// askCode says whether a sign-in asks for a code first; one with a
	// fixed code needs none.
	askCode func(phone string) bool
	// codeMayBeRefused accepts a 429 to a code request when the code is
	// fixed: per-phone limits may have been spent before.
	codeMayBeRefused bool
}

// previewSigner signs in new phones with the codes DEV_MODE answers. The
// second sign-in of a flow is a new account too: a phone gets one code a
// minute, so the flow's first account could not have a second code yet.
var previewSigner = signer{
	account: func() (string, string, error) {
		p, err := newPhone()
		return p, "", err
	},
	again: func(string, string) (string, string, error) {
		p, err := newPhone()
		return p, "", err
	},
	askCode: func(string) bool { return true },
}

// signInFlow is one person's whole visit: ask for a code and sign in, read
// the account, write a mood, list the moods, export, refresh, sign out
// (the session then refuses the first access token), sign in again, export
// that account and delete it. Every step is counted in the client's tally;
// the first that does not answer as it should ends the flow.
func (c *apiClient) signInFlow(s signer, note string) (out flowOutcome) {
	phone, code, err := s.account()
	if err != nil {
		out.failed = &stepFailure{step: "account", at: time.Now(), err: err}
		return out
	}
	pair, f := c.signIn(s, phone, code)
	if f != nil {
		out.failed = f
		return out
	}
	first := pair.AccessToken
	out.kept = account{phone: phone, userID: pair.User.ID.String()}

	steps := []func() *stepFailure{
		func() *stepFailure {
			start := time.Now()
			a := c.do("me", http.MethodGet, soulauth.PathMe, first, nil)
			if f := a.expect("me", start, http.StatusOK); f != nil {
				return f
			}
			var u auth.User
			if err := json.Unmarshal(a.body, &u); err != nil || u.ID != pair.User.ID {
				return a.failure("me", start, http.StatusOK, fmt.Errorf("not the signed-in user (%v)", err))
			}
			return nil
		},
		func() *stepFailure {
			start := time.Now()
			a := c.do("sessions", http.MethodGet, soulauth.PathSessions, first, nil)
			if f := a.expect("sessions", start, http.StatusOK); f != nil {
				return f
			}
			if !bytes.Contains(a.body, []byte(`"current":true`)) {
				return a.failure("sessions", start, http.StatusOK, errors.New("the caller's session is not listed as current"))
			}
			return nil
		},
		func() *stepFailure {
			start := time.Now()
			a := c.send("mood", moodRequest(c.base, first, note))
			if f := a.expect("mood", start, http.StatusCreated); f != nil {
				return f
			}
			out.note = note
			return nil
		},
		func() *stepFailure {
			start := time.Now()
			a := c.do("moods", http.MethodGet, "/api/moods?limit=20", first, nil)
			if f := a.expect("moods", start, http.StatusOK); f != nil {
				return f
			}
			if !bytes.Contains(a.body, []byte(`"`+note+`"`)) {
				return a.failure("moods", start, http.StatusOK, errors.New("the mood just written is not listed"))
			}
			return nil
		},
		func() *stepFailure { return c.export(first, note) },
		func() *stepFailure {
			start := time.Now()
			a := c.do("refresh", http.MethodPost, soulauth.PathRefresh, "", map[string]string{"refresh_token": pair.RefreshToken})
			if f := a.expect("refresh", start, http.StatusOK); f != nil {
				return f
			}
			if err := json.Unmarshal(a.body, &pair); err != nil || pair.RefreshToken == "" {
				return a.failure("refresh", start, http.StatusOK, fmt.Errorf("no token pair (%v)", err))
			}
			return nil
		},
		func() *stepFailure {
			start := time.Now()
			a := c.do("logout", http.MethodPost, soulauth.PathLogout, "", map[string]string{"refresh_token": pair.RefreshToken})
			return a.expect("logout", start, http.StatusNoContent)
		},
		func() *stepFailure {
			start := time.Now()
			a := c.do("me_after_logout", http.MethodGet, soulauth.PathMe, first, nil)
			return a.expect("me_after_logout", start, http.StatusUnauthorized)
		},
	}
	for _, step := range steps {
		if f := step(); f != nil {
			out.failed = f
			return out
		}
	}

	phone, code, err = s.again(phone, code)
	if err != nil {
		out.failed = &stepFailure{step: "account", at: time.Now(), err: err}
		return out
	}
	again, f := c.signIn(s, phone, code)
	if f == nil {
		f = c.export(again.AccessToken, "")
	}
	if f != nil {
		out.failed = f
		return out
	}
	start := time.Now()
	a := c.do("delete_me", http.MethodDelete, soulauth.PathMe, again.AccessToken, nil)
	if f := a.expect("delete_me", start, http.StatusNoContent); f != nil {
		out.failed = f
		return out
	}
	out.deleted = &deletedAccount{account: account{phone: phone, userID: again.User.ID.String()}, start: start, end: time.Now()}
	return out
}

// signIn asks for a code when s says so and signs in with it: steps
// otp_request and verify.
func (c *apiClient) signIn(s signer, phone, code string) (soulauth.TokenPair, *stepFailure) {
	var pair soulauth.TokenPair
	if s.askCode(phone) {
		start := time.Now()
		a := c.do("otp_request", http.MethodPost, soulauth.PathOTPRequest, "", map[string]string{"phone": phone})
		switch {
		case a.status == http.StatusOK && code == "":
			var sent soulauth.OTPSent
			if err := json.Unmarshal(a.body, &sent); err != nil || sent.PreviewCode == "" {
				return pair, a.failure("otp_request", start, http.StatusOK, fmt.Errorf("no preview_code (%v)", err))
			}
			code = sent.PreviewCode
		case a.status == http.StatusOK:
		case a.status == http.StatusTooManyRequests && s.codeMayBeRefused && code != "":
		default:
			return pair, a.failure("otp_request", start, http.StatusOK, nil)
		}
	}
	if code == "" {
		return pair, &stepFailure{step: "verify", at: time.Now(), err: errors.New("no code to sign in with")}
	}
	start := time.Now()
	a := c.do("verify", http.MethodPost, soulauth.PathVerifyOTP, "", map[string]string{"phone": phone, "code": code})
	if f := a.expect("verify", start, http.StatusOK); f != nil {
		return pair, f
	}
	if err := json.Unmarshal(a.body, &pair); err != nil || pair.AccessToken == "" || pair.RefreshToken == "" {
		return pair, a.failure("verify", start, http.StatusOK, fmt.Errorf("no token pair (%v)", err))
	}
	return pair, nil
}

// export downloads the account's export whole; when note is not empty it
// must hold that mood.
func (c *apiClient) export(token, note string) *stepFailure {
	start := time.Now()
	a := c.do("export", http.MethodGet, soulauth.PathExport, token, nil)
	if f := a.expect("export", start, http.StatusOK); f != nil {
		return f
	}
	if !json.Valid(a.body) {
		return a.failure("export", start, http.StatusOK, errors.New("not a whole JSON document"))
	}
	if note != "" && !bytes.Contains(a.body, []byte(`"`+note+`"`)) {
		return a.failure("export", start, http.StatusOK, errors.New("the mood just written is not in it"))
	}
	return nil
}

// signedInWithEntries signs in a new account and exports it, so that it
// has an entry under each limit an account can have (otp_attempts is
// cleared by the sign-in itself); the session stays open.
func (c *apiClient) signedInWithEntries(s signer) (account, string, *stepFailure) {
	phone, code, err := s.account()
	if err != nil {
		return account{}, "", &stepFailure{step: "account", at: time.Now(), err: err}
	}
	pair, f := c.signIn(s, phone, code)
	if f == nil {
		f = c.export(pair.AccessToken, "")
	}
	return account{phone: phone, userID: pair.User.ID.String()}, pair.AccessToken, f
}

// --- Shared with the soak: requests and their tally ---

// apiClient sends requests as one client address (X-Forwarded-For) and
// counts every answer in its tally.
type apiClient struct {
	base  string
	http  *http.Client
	addr  string
	tally *tally
}

func newAPIClient(base string, client *http.Client, addr string, t *tally) *apiClient {
	return &apiClient{base: base, http: client, addr: addr, tally: t}
}

// newTransport keeps enough idle connections for a few workers, so that
// the load does not open a connection per request.
func newTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 64
	tr.IdleConnTimeout = 30 * time.Second
	return tr
}

// answer is one finished request; status 0 means no answer (err).
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// expect returns nil when the answer has status want, else its failure.
func (a answer) expect(step string, start time.Time, want int) *stepFailure {
	if a.err == nil && a.status == want {
		return nil
	}
	return a.failure(step, start, want, nil)
}

// failure describes the answer as a failed step.
func (a answer) failure(step string, start time.Time, want int, err error) *stepFailure {
	if err == nil {
		err = a.err
	}
	body := string(a.body)
	if len(body) > 300 {
		body = body[:300] + "..."
	}
	return &stepFailure{step: step, at: start, status: a.status, want: want, body: body, err: err}
}

// do sends a request with a JSON body (when body is not nil) and a bearer
// token (when not empty).
func (c *apiClient) do(step, method, path, token string, body any) answer {
	var (
		b   []byte
		req *http.Request
	)
	if body != nil {
		b, _ = json.Marshal(body)
		req, _ = http.NewRequest(method, c.base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req, _ = http.NewRequest(method, c.base+path, nil)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return c.send(step, req)
}

// send sends req from the client's address and counts its answer under
// step.
func (c *apiClient) send(step string, req *http.Request) answer {
	req.Header.Set("X-Forwarded-For", c.addr)
	resp, err := c.http.Do(req)
	if err != nil {
		c.tally.add(step, 0)
		return answer{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		// A body cut short is a failure on the wire, whatever the status.
		c.tally.add(step, 0)
		return answer{status: 0, header: resp.Header, body: body, err: fmt.Errorf("%d, reading the body: %w", resp.StatusCode, err)}
	}
	c.tally.add(step, resp.StatusCode)
	return answer{status: resp.StatusCode, header: resp.Header, body: body}
}

// tally counts answers by step and status; status 0 counts requests that
// got no (whole) answer.
type tally struct {
	mu sync.Mutex
	n  map[string]map[int]int64
}

func (c *tally) add(step string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]map[int]int64{}
	}
	if c.n[step] == nil {
		c.n[step] = map[int]int64{}
	}
	c.n[step][status]++
}

// sent is the number of requests counted.
func (c *tally) sent() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, byStatus := range c.n {
		for _, k := range byStatus {
			n += k
		}
	}
	return n
}

// stepOrder is the order steps are printed in; others follow by name.
var stepOrder = []string{"otp_request", "verify", "me", "sessions", "mood", "moods", "export", "refresh", "logout", "me_after_logout", "delete_me"}

// String prints step=status:count,status:count for each step, status 0
// as "none".
func (c *tally) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	rank := func(step string) int {
		for i, s := range stepOrder {
			if s == step {
				return i
			}
		}
		return len(stepOrder)
	}
	steps := make([]string, 0, len(c.n))
	for s := range c.n {
		steps = append(steps, s)
	}
	sort.Slice(steps, func(i, j int) bool {
		if ri, rj := rank(steps[i]), rank(steps[j]); ri != rj {
			return ri < rj
		}
		return steps[i] < steps[j]
	})
	parts := make([]string, 0, len(steps))
	for _, s := range steps {
		statuses := make([]int, 0, len(c.n[s]))
		for st := range c.n[s] {
			statuses = append(statuses, st)
		}
		sort.Ints(statuses)
		counts := make([]string, 0, len(statuses))
		for _, st := range statuses {
			name := fmt.Sprint(st)
			if st == 0 {
				name = "none"
			}
			counts = append(counts, fmt.Sprintf("%s:%d", name, c.n[s][st]))
		}
		parts = append(parts, s+"="+strings.Join(counts, ","))
	}
	return strings.Join(parts, " ")
}

// --- Shared with the soak: addresses, phones, limiter keys ---

var flowAddrs, floodAddrs atomic.Uint32

// flowAddr returns a client address of its own for one flow, in
// 198.18.0.0/16 (a benchmarking range); it comes round again after 65,534
// flows, long after the per-IP windows.
func flowAddr() string {
	n := flowAddrs.Add(1)%65534 + 1
	return fmt.Sprintf("198.18.%d.%d", n>>8, n&255)
}

// floodAddr returns a new flood source: an IPv4 address in 198.19.0.0/16,
// or every other time an IPv6 address in a /64 of its own under
// 2001:db8::/32, since limits may key an IPv6 client by its /64.
func floodAddr() string {
	n := floodAddrs.Add(1)
	if n%2 == 0 {
		m := (n/2)%65534 + 1
		return fmt.Sprintf("198.19.%d.%d", m>>8, m&255)
	}
	return fmt.Sprintf("2001:db8:%x:%x::1", n>>16, n&0xffff)
}

var flowPhones atomic.Int64

// newPhone returns a valid UK mobile number that no other sign-in of this
// process used: +44 7400 5xxxxx (signIn in helpers_test.go uses +44 7400
// 3xxxxx).
func newPhone() (string, error) {
	n := flowPhones.Add(1)
	if n >= 500000 {
		return "", errors.New("out of phone numbers")
	}
	raw := fmt.Sprintf("+%d", 447400500000+n)
	e164, err := phone.Normalize(raw)
	if err != nil {
		return "", fmt.Errorf("%s: %w", raw, err)
	}
	return e164, nil
}

// limiterKeys computes the storage keys the binary's limiter gives an
// account's entries: a Limiter with the hash key the soul app derives
// from SECRET_KEY (auth.LabelRateLimitKeys), used only for StorageKey.
type limiterKeys struct{ l *limiter.Limiter }

func newLimiterKeys(t *testing.T, secret string) *limiterKeys {
	t.Helper()
	return &limiterKeys{l: soultest.LimiterKeys(t, secret)}
}

// of returns the keys of acc's entries by rule: its phone's and its
// user's under the sign-in rules keyed on either, its user's under the
// Caddyfile's default and export policies.
func (k *limiterKeys) of(acc account) map[string]string {
	limits := auth.DefaultLimits()
	keys := map[string]string{}
	for _, r := range limits.Rules() {
		switch r.Subject {
		case auth.SubjectPhone:
			keys[r.Name] = k.l.StorageKey(r.Name, acc.phone)
		case auth.SubjectUser:
			keys[r.Name] = k.l.StorageKey(r.Name, auth.UserSubject(acc.userID))
		}
	}
	for _, policy := range []string{"default", "export"} {
		keys[policy] = k.l.StorageKey(policy, auth.UserSubject(acc.userID))
	}
	return keys
}
