package soulratelimit_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/metrics"
	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// RATE_LIMIT_REDIS_TIMEOUT is how long a check waits for Redis: with Redis
// paused for 600 ms, a check allowed 50 ms answers from memory, and one
// allowed 3 s waits and answers from Redis. A private Redis, since the
// pause stops every client of the server.
func TestRedisTimeoutSetting(t *testing.T) {
	for _, tc := range []struct {
		timeout string
		storage string
	}{
		{"50ms", limiter.StorageLocal},
		{"3s", limiter.StorageRedis},
	} {
		t.Run(tc.timeout, func(t *testing.T) {
			redis := testservices.StartRedis(t)
			s := soultest.Start(t, soultest.Options{Database: soultest.SQLite, RedisURL: redis.URL(), Env: map[string]string{
				"RATE_LIMIT_DEFAULT_LIMIT": "1000",
				"RATE_LIMIT_REDIS_TIMEOUT": tc.timeout,
			}})
			// One check on a Redis that answers, so the limiter is warm.
			soultest.WantStatus(t, s.Do(http.MethodGet, "/api/nope", nil), http.StatusNotFound)

			before := decisions(t, tc.storage)
			rc := testservices.RedisClient(t, redis.URL())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := rc.Do(ctx, rc.B().ClientPause().Timeout(600).All().Build()).Error(); err != nil {
				t.Fatalf("CLIENT PAUSE: %v", err)
			}
			soultest.WantStatus(t, s.Do(http.MethodGet, "/api/nope", nil), http.StatusNotFound)
			if got := decisions(t, tc.storage); got != before+1 {
				t.Errorf("with Redis paused and a %s timeout, %v checks answered from %s, want 1", tc.timeout, got-before, tc.storage)
			}
		})
	}
}

// decisions is how many default-policy checks storage has allowed.
func decisions(t *testing.T, storage string) float64 {
	t.Helper()
	var m dto.Metric
	if err := metrics.RateLimitDecisions.WithLabelValues("default", storage, metrics.Decision(true)).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
