package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/metrics"
	"github.com/soulapp/soul/internal/otp"
	"github.com/soulapp/soul/internal/phone"
	"github.com/soulapp/soul/internal/token"
)

// A test number of the fictional +1 555 range, which no country owns.
const testNumber = "+15555550100"

// newGuardedService is a Service with the local provider on a memory
// limiter it returns, the given limits and allowed countries, and
// testNumber listed as a test number.
func newGuardedService(t *testing.T, limits auth.Limits, allowed []string) (*auth.Service, *limiter.Limiter) {
	t.Helper()
	db := openDB(t, database.SQLite)
	c := &clock{t: time.Now()}
	lim, err := limiter.New(limiter.Options{HashKey: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lim.Close() })
	iss, err := token.NewIssuer(token.Options{Key: testSecret, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := auth.DeriveKey(testSecret, auth.LabelOTP)
	p, err := auth.NewLocalProvider(db, key, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := otp.ParseTestNumbers(testNumber+"=123456", c.Now().Add(time.Hour).Format(time.RFC3339), phone.NormalizeLoose)
	if err != nil {
		t.Fatal(err)
	}
	seal, _ := auth.DeriveKey(testSecret, auth.LabelRefreshSeal)
	svc, err := auth.NewService(auth.Config{
		DB: db, Issuer: iss, Provider: p, Limiter: lim, Limits: limits, SealKeys: [][]byte{seal},
		TestNumbers: tests, AllowedCountries: allowed, Preview: true, Now: c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc, lim
}

func TestAllowedCountries(t *testing.T) {
	ctx := context.Background()
	svc, _ := newGuardedService(t, auth.DefaultLimits(), []string{"gb", "IE"})
	for _, tc := range []struct {
		phone string
		want  error
	}{
		{"+447400123456", nil},
		{"+353851234567", nil},
		{"+33612345678", auth.ErrCountryNotAllowed},
		{"+12015550123", auth.ErrCountryNotAllowed},
		{"+80012345678", auth.ErrCountryNotAllowed}, // no country at all
		{testNumber, nil},                           // a test number sends nothing
	} {
		_, err := svc.RequestCode(ctx, ip, tc.phone)
		if !errors.Is(err, tc.want) {
			t.Errorf("RequestCode(%s) = %v, want %v", tc.phone, err, tc.want)
		}
	}
	// Refused before any check, so not counted: the per-IP limit of 5
	// has room for two more after the three sends.
	for i, p := range []string{"+447400123457", "+447400123458", "+447400123459"} {
		_, err := svc.RequestCode(ctx, ip, p)
		if want := i == 2; errors.Is(err, auth.ErrRateLimited) != want {
			t.Errorf("send %d after the refusals: %v", i+4, err)
		}
	}
	if o, ok := auth.OutcomeOf(auth.ErrCountryNotAllowed); !ok || o.Status != 422 || o.Code != "phone_country_not_allowed" {
		t.Errorf("outcome %+v", o)
	}

	_, err := auth.NewService(auth.Config{
		DB: openDB(t, database.SQLite), Issuer: &token.Issuer{}, Provider: &auth.LocalProvider{},
		Limiter: &limiter.Limiter{}, SealKeys: [][]byte{testSecret}, AllowedCountries: []string{"GB", "UK"},
	})
	if err == nil || !strings.Contains(err.Error(), `"UK"`) {
		t.Errorf("NewService with UK = %v, want an error naming it", err)
	}
}

// The budget refuses past its count, the country's before the global one,
// with the rule's decision; a refusal spends neither the phone's cooldown
// nor anything else, a cooldown refusal spends no budget, and test
// numbers do not count.
func TestSendBudget(t *testing.T) {
	ctx := context.Background()
	limits := auth.DefaultLimits()
	limits.RequestPerIP.Limit = 100
	limits.SendBudget.Limit = 3
	limits.SendBudgetPerCountry.Limit = 2
	svc, lim := newGuardedService(t, limits, nil)
	global := func() float64 { return counterValue(t, metrics.OTPBudgetRefusals.WithLabelValues(metrics.ScopeGlobal)) }
	country := func() float64 {
		return counterValue(t, metrics.OTPBudgetRefusals.WithLabelValues(metrics.ScopeCountry))
	}
	g0, c0 := global(), country()

	send := func(p string) error {
		t.Helper()
		_, err := svc.RequestCode(ctx, ip, p)
		return err
	}
	wantBudget := func(err error, rule string, limit int) {
		t.Helper()
		var re *auth.RetryError
		if !errors.As(err, &re) || !errors.Is(err, auth.ErrBudgetExhausted) || re.Decision == nil {
			t.Fatalf("err = %v, want ErrBudgetExhausted with a decision", err)
		}
		if re.Decision.Rule.Name != rule || re.Decision.Limit != limit || re.Decision.Allowed ||
			re.RetryAfter <= 0 || re.RetryAfter > time.Hour || re.Decision.RetryAfter != re.RetryAfter {
			t.Fatalf("refusal %+v after %s, want one by %s (limit %d)", *re.Decision, re.RetryAfter, rule, limit)
		}
	}

	for _, p := range []string{"+447400123401", "+447400123402"} {
		if err := send(p); err != nil {
			t.Fatalf("send to %s: %v", p, err)
		}
	}
	// The cooldown refuses the same phone again, as ever, and spends no budget.
	if err := send("+447400123401"); !errors.Is(err, auth.ErrRateLimited) {
		t.Fatalf("a second send to one phone = %v, want ErrRateLimited", err)
	}
	wantBudget(send("+447400123403"), "otp_budget_country", 2)
	if d, err := lim.Peek(ctx, limits.SendPerPhone, "+447400123403"); err != nil || !d.Allowed {
		t.Errorf("the refused phone's cooldown: %+v, %v; want it unspent", d, err)
	}
	if err := send(testNumber); err != nil {
		t.Fatalf("test number past the budget: %v", err)
	}
	if err := send("+33612345601"); err != nil {
		t.Fatalf("send to another country: %v", err)
	}
	wantBudget(send("+33612345602"), "otp_budget", 3)
	if err := send(testNumber); !errors.Is(err, auth.ErrRateLimited) {
		t.Errorf("test number again = %v, want its cooldown, not the budget", err)
	}
	if g, c := global()-g0, country()-c0; g != 1 || c != 1 {
		t.Errorf("refusals counted global %v, country %v; want 1 and 1", g, c)
	}
	if o, ok := auth.OutcomeOf(&auth.RetryError{Err: auth.ErrBudgetExhausted}); !ok || o.Status != 429 || o.Code != "sms_budget_exhausted" {
		t.Errorf("outcome %+v", o)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
