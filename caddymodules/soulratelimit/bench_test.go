package soulratelimit

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/google/uuid"
	"github.com/redis/rueidis"

	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/internal/token"
)

// subjects is how many client addresses the benchmark cycles through, so
// each one holds a realistic number of hits.
const subjects = 100_000

// BenchmarkHandler measures what soul_rate_limit adds to a request: compare
// each case with "none", the same request passed straight to the next
// handler.
func BenchmarkHandler(b *testing.B) {
	ips := make([]string, subjects)
	for i := range ips {
		ips[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
	}
	secret := []byte("benchmark-secret-key-0123456789abcdef")
	iss, err := token.NewIssuer(token.Options{Key: secret})
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := iss.IssueSession(uuid.NewString(), uuid.NewString())
	if err != nil {
		b.Fatal(err)
	}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })

	var redis rueidis.Client
	if url := os.Getenv(testservices.EnvRedisURL); url != "" {
		opt, err := rueidis.ParseURL(url)
		if err != nil {
			b.Fatal(err)
		}
		opt.DisableCache = true
		redis, err = rueidis.NewClient(opt)
		if err != nil {
			b.Fatal(err)
		}
		defer redis.Close()
	}

	cases := []struct {
		name   string
		client rueidis.Client
		bearer bool
		limit  bool
	}{
		{"none", nil, false, false},
		{"memory/ip", nil, false, true},
		{"memory/user", nil, true, true},
		{"redis/ip", redis, false, true},
		{"redis/user", redis, true, true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			if strings.HasPrefix(tc.name, "redis") && tc.client == nil {
				b.Skip("no Redis: run under scripts/testenv.sh")
			}
			h := &Handler{Policy: "bench_" + uuid.NewString()[:8], Limit: 1 << 30, Window: caddy.Duration(time.Minute), Key: KeyUser}
			if err := h.Validate(); err != nil {
				b.Fatal(err)
			}
			lim, err := limiter.New(limiter.Options{Client: tc.client, HashKey: secret})
			if err != nil {
				b.Fatal(err)
			}
			defer lim.Close()
			h.lim, h.issuer, h.now = lim, iss, time.Now

			base := httptest.NewRequest(http.MethodGet, "/api/moods", nil)
			if tc.bearer {
				base.Header.Set("Authorization", "Bearer "+tok)
			}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := base.WithContext(context.WithValue(base.Context(), caddyhttp.VarsCtxKey,
					map[string]any{caddyhttp.ClientIPVarKey: ips[i%subjects]}))
				var err error
				if tc.limit {
					err = h.ServeHTTP(w, r, next)
				} else {
					err = next.ServeHTTP(w, r)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
