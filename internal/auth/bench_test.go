package auth_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/database"
)

// BenchmarkSignIn is one otp/request plus verify-otp round on Postgres
// through the service: a challenge upsert, then the check, the user insert
// and the session insert in one transaction, and an access token.
func BenchmarkSignIn(b *testing.B) {
	db := openDB(b, database.Postgres)
	svc := newService(b, db, &clock{t: time.Now()})
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
