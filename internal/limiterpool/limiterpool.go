// Package limiterpool hands every handler of the running config the same
// limiter.Limiter, so the auth rules and the generic rate-limit policies
// share one local store and one Forget reaches them all.
//
// Limiters live in a caddy.UsagePool keyed by the Redis URL and the hash
// key. A reload with the same settings reuses the Limiter (local counts
// survive it); the last handler to let go closes it, which stops the local
// store's sweeper, so reloads leak no goroutine.
package limiterpool

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/soulapp/soul/caddymodules/soul"
	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/metrics"
)

// LabelHashKey derives the key that hides subjects (phones, user ids, IPs)
// in limiter storage keys from SECRET_KEY.
const LabelHashKey = "soul rate-limit keys v1"

var pool = caddy.NewUsagePool()

type resource struct{ l *limiter.Limiter }

func (r *resource) Destruct() error {
	metrics.RemoveLimiter(r.l)
	return r.l.Close()
}

// Acquire returns the shared Limiter of app. Call release from the
// handler's Cleanup.
func Acquire(app *soul.App, logger *zap.Logger) (l *limiter.Limiter, release func() error, err error) {
	s := app.Settings()
	hashKey, err := auth.DeriveKey(s.SecretKey, LabelHashKey)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(hashKey)
	// A reload with another Redis timeout or memory bound makes a new
	// Limiter with it.
	key := s.RedisURL + "\x00" + s.RateLimitRedisTimeout.String() + "\x00" + strconv.Itoa(s.RateLimitMemoryMaxKeys) + "\x00" + hex.EncodeToString(sum[:])
	val, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) {
		l, err := limiter.New(limiter.Options{
			Client:       app.Redis(),
			HashKey:      hashKey,
			Timeout:      s.RateLimitRedisTimeout,
			MaxLocalKeys: s.RateLimitMemoryMaxKeys,
			OnRedisError: func(err error) {
				metrics.RedisErrors.Inc()
				logger.Warn("rate limits fell back to per-instance memory", zap.Error(err))
			},
		})
		if err != nil {
			return nil, err
		}
		metrics.AddLimiter(l)
		return &resource{l: l}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	release = func() error {
		_, err := pool.Delete(key)
		return err
	}
	return val.(*resource).l, release, nil
}
