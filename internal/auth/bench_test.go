package auth_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/limiter"
)

// BenchmarkSignIn is one otp/request plus verify-otp round on Postgres
// through the service: a challenge upsert, then the check, the user insert
// and the session insert in one transaction, and an access token.
func BenchmarkSignIn(b *testing.B) {
	db := openDB(b, database.Postgres)
	// Every round comes from one client IP: limits high enough for any
	// number of rounds, so that a fast run is not cut short by its own
	// per-IP limit (newService's allow 1000 in 5 minutes).
	limits := auth.DefaultLimits()
	for _, r := range []*limiter.Rule{&limits.RequestPerIP, &limits.SendPerPhone, &limits.SendPerDay, &limits.VerifyPerIP} {
		r.Limit = math.MaxInt32
	}
	svc := newServiceWith(b, db, &clock{t: time.Now()}, limits)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		phone := fmt.Sprintf("+4474%08d", i)
		sent, err := svc.RequestCode(ctx, ip, phone)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := svc.VerifyCode(ctx, ip, phone, sent.Preview); err != nil {
			b.Fatal(err)
		}
	}
}
