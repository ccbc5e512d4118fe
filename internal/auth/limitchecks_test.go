package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/metrics"
)

// decisionCount reads one series of soul_rate_limit_decisions_total.
func decisionCount(t *testing.T, policy, storage, decision string) float64 {
	t.Helper()
	var m dto.Metric
	if err := metrics.RateLimitDecisions.WithLabelValues(policy, storage, decision).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// Every sign-in limit check is counted in soul_rate_limit_decisions_total
// under its policy name and the store that answered (memory here), refusals
// as limited: the cooldown, the wrong tries that burn a code and the
// refresh limit, so the rate-limit alert sees sign-in abuse.
func TestLimitDecisionsCounted(t *testing.T) {
	ctx := context.Background()
	limits := auth.DefaultLimits()
	limits.RefreshPerIP.Limit = 1
	svc := newServiceWith(t, openDB(t, database.SQLite), &clock{t: time.Now()}, limits)
	const phone = "+447400123461"

	type series struct{ policy, decision string }
	counted := map[series]float64{}
	for _, p := range []string{"otp_request", "otp_send", "otp_send_day", "otp_verify", "otp_attempts", "refresh"} {
		for _, d := range []string{"allowed", "limited"} {
			counted[series{p, d}] = decisionCount(t, p, limiter.StorageLocal, d)
		}
	}

	sent, err := svc.RequestCode(ctx, "192.0.2.30", phone)
	if err != nil {
		t.Fatal(err)
	}
	// Within the minute's cooldown: otp_send refuses, the others have room.
	if _, err := svc.RequestCode(ctx, "192.0.2.30", phone); !errors.Is(err, auth.ErrRateLimited) {
		t.Fatalf("second send: %v, want ErrRateLimited", err)
	}
	// Five wrong codes burn the code; the sixth try is refused by its tries.
	for i := 0; i < 5; i++ {
		if _, err := svc.VerifyCode(ctx, "192.0.2.31", phone, wrongCode(sent.Preview)); err == nil {
			t.Fatal("a wrong code signed in")
		}
	}
	if _, err := svc.VerifyCode(ctx, "192.0.2.31", phone, sent.Preview); !errors.Is(err, auth.ErrTooManyAttempts) {
		t.Fatalf("sixth try: %v, want ErrTooManyAttempts", err)
	}
	if _, err := svc.Refresh(ctx, "192.0.2.32", "not a token"); !errors.Is(err, auth.ErrInvalidRefreshToken) {
		t.Fatalf("malformed token: %v", err)
	}
	if _, err := svc.Refresh(ctx, "192.0.2.32", "not a token"); !errors.Is(err, auth.ErrRateLimited) {
		t.Fatalf("second refresh: %v, want ErrRateLimited", err)
	}

	want := map[series]float64{
		{"otp_request", "allowed"}: 2, {"otp_request", "limited"}: 0,
		{"otp_send", "allowed"}: 1, {"otp_send", "limited"}: 1,
		{"otp_send_day", "allowed"}: 2, {"otp_send_day", "limited"}: 0,
		// The IP had room for all six tries; the code for five.
		{"otp_verify", "allowed"}: 6, {"otp_verify", "limited"}: 0,
		{"otp_attempts", "allowed"}: 5, {"otp_attempts", "limited"}: 1,
		{"refresh", "allowed"}: 1, {"refresh", "limited"}: 1,
	}
	for s, n := range want {
		if got := decisionCount(t, s.policy, limiter.StorageLocal, s.decision) - counted[s]; got != n {
			t.Errorf(`soul_rate_limit_decisions_total{policy=%q,storage="local",decision=%q} grew by %v, want %v`, s.policy, s.decision, got, n)
		}
	}
	if got := decisionCount(t, "otp_verify", limiter.StorageRedis, "allowed"); got != 0 {
		t.Errorf("decisions answered from memory were counted as redis (%v)", got)
	}
}
