package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/internal/token"
	"github.com/soulapp/soul/migrations"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openDB(t testing.TB, kind database.Kind) *bun.DB {
	t.Helper()
	cfg := database.Config{SQLitePath: filepath.Join(t.TempDir(), "soul.db")}
	if kind == database.Postgres {
		cfg.URL = testservices.NewDatabase(t)
	}
	db, _, err := database.Open(context.Background(), cfg, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	r, err := migrations.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// newService returns a Service on db with the local provider, memory
// limits relaxed for sends, and a clock the test moves.
func newService(t testing.TB, db *bun.DB, c *clock) *auth.Service {
	t.Helper()
	limits := auth.DefaultLimits()
	limits.SendPerPhone.Limit = 1000
	limits.SendPerDay.Limit = 1000
	limits.RequestPerIP.Limit = 1000
	limits.VerifyPerIP.Limit = 1000
	return newServiceWith(t, db, c, limits)
}

// newServiceWith is newService with the given limits.
func newServiceWith(t testing.TB, db *bun.DB, c *clock, limits auth.Limits) *auth.Service {
	t.Helper()
	lim, err := limiter.New(limiter.Options{HashKey: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lim.Close() })
	return newServiceOn(t, db, c, limits, lim)
}

// newServiceOn is newServiceWith on the given limiter.
func newServiceOn(t testing.TB, db *bun.DB, c *clock, limits auth.Limits, lim *limiter.Limiter) *auth.Service {
	t.Helper()
	iss, err := token.NewIssuer(token.Options{Key: testSecret, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := auth.DeriveKey(testSecret, auth.LabelOTP)
	p, err := auth.NewLocalProvider(db, key, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	seal, _ := auth.DeriveKey(testSecret, auth.LabelRefreshSeal)
	svc, err := auth.NewService(auth.Config{
		DB: db, Issuer: iss, Provider: p, Limiter: lim, Limits: limits,
		SealKeys: [][]byte{seal}, Preview: true, Now: c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func forEachDB(t *testing.T, fn func(t *testing.T, db *bun.DB)) {
	for _, kind := range []database.Kind{database.SQLite, database.Postgres} {
		t.Run(string(kind), func(t *testing.T) { fn(t, openDB(t, kind)) })
	}
}

const ip = "192.0.2.1"

func TestCodeExpiry(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
		svc := newService(t, db, c)
		const phone = "+447400123456"

		sent, err := svc.RequestCode(ctx, ip, phone)
		if err != nil {
			t.Fatal(err)
		}
		c.Add(5*time.Minute - time.Millisecond)
		// Still valid a moment before the end: check with a wrong code.
		if _, err := svc.VerifyCode(ctx, ip, phone, wrongCode(sent.Preview)); !errors.Is(err, auth.ErrInvalidCode) {
			t.Fatalf("just before expiry: %v, want ErrInvalidCode", err)
		}
		c.Add(time.Millisecond)
		if _, err := svc.VerifyCode(ctx, ip, phone, sent.Preview); !errors.Is(err, auth.ErrCodeExpired) {
			t.Fatalf("at expiry: %v, want ErrCodeExpired", err)
		}

		// A new code replaces the old one and brings fresh tries.
		first, _ := svc.RequestCode(ctx, ip, phone)
		second, _ := svc.RequestCode(ctx, ip, phone)
		if first.Preview != second.Preview {
			if _, err := svc.VerifyCode(ctx, ip, phone, first.Preview); !errors.Is(err, auth.ErrInvalidCode) {
				t.Fatalf("replaced code: %v, want ErrInvalidCode", err)
			}
		}
		g, err := svc.VerifyCode(ctx, ip, phone, second.Preview)
		if err != nil || !g.NewUser || g.User.Phone != phone {
			t.Fatalf("VerifyCode = %+v, %v", g, err)
		}
	})
}

func TestRefreshGraceWindow(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
		svc := newService(t, db, c)
		sent, _ := svc.RequestCode(ctx, ip, "+447400123457")
		g1, err := svc.VerifyCode(ctx, ip, "+447400123457", sent.Preview)
		if err != nil {
			t.Fatal(err)
		}
		g2, err := svc.Refresh(ctx, ip, g1.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		c.Add(auth.RefreshGrace)
		again, err := svc.Refresh(ctx, ip, g1.RefreshToken)
		if err != nil || again.RefreshToken != g2.RefreshToken {
			t.Fatalf("parent at the end of the grace window: %v", err)
		}
		c.Add(time.Microsecond)
		if _, err := svc.Refresh(ctx, ip, g1.RefreshToken); !errors.Is(err, auth.ErrRefreshReused) {
			t.Fatalf("parent after the grace window: %v, want ErrRefreshReused", err)
		}
		if _, err := svc.Refresh(ctx, ip, g2.RefreshToken); !errors.Is(err, auth.ErrInvalidRefreshToken) {
			t.Fatalf("current token of a revoked session: %v", err)
		}
		live, err := auth.SessionLive(ctx, db, g2.User.ID, g2.SessionID, c.Now())
		if err != nil || live {
			t.Fatalf("SessionLive = %v, %v after reuse", live, err)
		}
	})
}

// Two refreshes racing with one token: both get the same new pair, and the
// session lives on.
func TestRefreshRace(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		c := &clock{t: time.Now()}
		svc := newService(t, db, c)
		sent, _ := svc.RequestCode(ctx, ip, "+447400123458")
		g, err := svc.VerifyCode(ctx, ip, "+447400123458", sent.Preview)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		out := make([]auth.Grant, 4)
		errs := make([]error, 4)
		for i := range out {
			wg.Go(func() { out[i], errs[i] = svc.Refresh(ctx, ip, g.RefreshToken) })
		}
		wg.Wait()
		for i := range out {
			if errs[i] != nil {
				t.Fatalf("refresh %d: %v", i, errs[i])
			}
			if out[i].RefreshToken != out[0].RefreshToken {
				t.Fatal("racing refreshes got different tokens")
			}
		}
	})
}

func wrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

// A refusal by the limiter carries the refusing rule's decision, for the
// rate-limit fields of the answer; when several rules refuse, the one that
// waits longest, which Retry-After reports too.
func TestRefusalCarriesDecision(t *testing.T) {
	ctx := context.Background()
	limits := auth.DefaultLimits()
	// A short cooldown, since the limiter keeps real time; long enough
	// that two sends in a row fall inside it on a loaded machine.
	limits.SendPerPhone.Window = time.Second
	limits.SendPerDay.Limit = 2
	svc := newServiceWith(t, openDB(t, database.SQLite), &clock{t: time.Now()}, limits)
	const phone = "+447400123459"

	send := func(clientIP string) *auth.RetryError {
		t.Helper()
		_, err := svc.RequestCode(ctx, clientIP, phone)
		if err == nil {
			return nil
		}
		var re *auth.RetryError
		if !errors.As(err, &re) || !errors.Is(err, auth.ErrRateLimited) || re.Decision == nil {
			t.Fatalf("RequestCode = %v, want ErrRateLimited with a decision", err)
		}
		if re.Decision.Allowed || re.Decision.Remaining != 0 || re.Decision.RetryAfter != re.RetryAfter {
			t.Fatalf("decision %+v with RetryAfter %s", *re.Decision, re.RetryAfter)
		}
		return re
	}
	wantRefusal := func(re *auth.RetryError, rule string, limit int) {
		t.Helper()
		if re == nil || re.Decision.Rule.Name != rule || re.Decision.Limit != limit {
			t.Fatalf("refusal %+v, want one by %s (limit %d)", re, rule, limit)
		}
	}

	if re := send("192.0.2.10"); re != nil {
		t.Fatalf("first send refused: %v", re)
	}
	wantRefusal(send("192.0.2.11"), "otp_send", 1)
	time.Sleep(limits.SendPerPhone.Window + 50*time.Millisecond)
	if re := send("192.0.2.12"); re != nil {
		t.Fatalf("send after the cooldown refused: %v", re)
	}
	// The cooldown and the daily cap both refuse; the daily cap waits longer.
	wantRefusal(send("192.0.2.13"), "otp_send_day", 2)
}

// A call made under WithLimitChecks records its limit decisions whatever
// its outcome, for the rate-limit fields of the answer; once a code is
// spent its tries are dropped, as they were forgotten. A call that makes
// no check records nothing.
func TestLimitChecksRecorded(t *testing.T) {
	svc := newServiceWith(t, openDB(t, database.SQLite), &clock{t: time.Now()}, auth.DefaultLimits())
	const phone = "+447400123460"
	// tightest runs fn with a fresh record and returns its tightest decision.
	tightest := func(fn func(ctx context.Context) error) (limiter.Decision, error) {
		t.Helper()
		checks := new(auth.LimitChecks)
		err := fn(auth.WithLimitChecks(context.Background(), checks))
		d, ok := checks.Tightest()
		if !ok {
			t.Fatal("no decision recorded")
		}
		return d, err
	}
	want := func(d limiter.Decision, rule string, remaining int) {
		t.Helper()
		if d.Rule.Name != rule || d.Remaining != remaining || !d.Allowed {
			t.Fatalf("tightest decision %+v, want %s allowed with %d remaining", d, rule, remaining)
		}
	}

	var code string
	d, err := tightest(func(ctx context.Context) error {
		sent, err := svc.RequestCode(ctx, "192.0.2.20", phone)
		code = sent.Preview
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// otp_request and otp_send_day have room; the cooldown has none.
	want(d, "otp_send", 0)

	d, err = tightest(func(ctx context.Context) error {
		_, err := svc.VerifyCode(ctx, "192.0.2.21", phone, wrongCode(code))
		return err
	})
	if !errors.Is(err, auth.ErrInvalidCode) {
		t.Fatalf("wrong code: %v", err)
	}
	want(d, "otp_attempts", 4)

	var g auth.Grant
	d, err = tightest(func(ctx context.Context) (err error) {
		g, err = svc.VerifyCode(ctx, "192.0.2.21", phone, code)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// otp_attempts (3 left) no longer counts: the IP's second verify does.
	want(d, "otp_verify", 8)

	d, err = tightest(func(ctx context.Context) (err error) {
		g, err = svc.Refresh(ctx, "192.0.2.22", g.RefreshToken)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want(d, "refresh", 9)
	d, err = tightest(func(ctx context.Context) error {
		_, err := svc.Refresh(ctx, "192.0.2.22", "not a token")
		return err
	})
	if !errors.Is(err, auth.ErrInvalidRefreshToken) {
		t.Fatalf("malformed token: %v", err)
	}
	want(d, "refresh", 8)

	checks := new(auth.LimitChecks)
	if _, err := svc.Logout(auth.WithLimitChecks(context.Background(), checks), g.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if d, ok := checks.Tightest(); ok {
		t.Fatalf("logout recorded %+v", d)
	}
	if d, ok := (*auth.LimitChecks)(nil).Tightest(); ok {
		t.Fatalf("nil record has %+v", d)
	}
}
