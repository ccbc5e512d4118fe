package soulauth

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/internal/token"
	"github.com/soulapp/soul/migrations"
)

// BenchmarkAuthenticate verifies an access token and checks its session,
// as every request to /api/me and the moods API does.
func BenchmarkAuthenticate(b *testing.B) {
	for _, kind := range []database.Kind{database.SQLite, database.Postgres} {
		b.Run(string(kind), func(b *testing.B) {
			cfg := database.Config{SQLitePath: filepath.Join(b.TempDir(), "soul.db")}
			if kind == database.Postgres {
				cfg.URL = testservices.NewDatabase(b)
			}
			ctx := context.Background()
			db, _, err := database.Open(ctx, cfg, 10*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			r, err := migrations.New(db)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.Up(ctx); err != nil {
				b.Fatal(err)
			}
			iss, err := token.NewIssuer(token.Options{Key: []byte("0123456789abcdef0123456789abcdef")})
			if err != nil {
				b.Fatal(err)
			}
			access := seedSession(b, db, iss)
			a := auth.NewAuthenticator(iss, db, nil)
			req := httptest.NewRequest("GET", PathMe, nil)
			req.Header.Set("Authorization", "Bearer "+access)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func seedSession(b *testing.B, db *bun.DB, iss *token.Issuer) string {
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := auth.User{ID: uuid.New(), Phone: "+447400123456", CreatedAt: now}
	_, hash := token.NewRefreshToken()
	s := auth.Session{ID: uuid.New(), UserID: u.ID, TokenHash: hash, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour)}
	ctx := context.Background()
	if _, err := db.NewInsert().Model(&u).Exec(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := db.NewInsert().Model(&s).Exec(ctx); err != nil {
		b.Fatal(err)
	}
	access, _, err := iss.IssueSession(u.ID.String(), s.ID.String())
	if err != nil {
		b.Fatal(err)
	}
	return access
}
