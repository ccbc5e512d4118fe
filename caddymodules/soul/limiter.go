package soul

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/soulapp/soul/internal/auth"
	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/metrics"
)

// limiters holds the Limiter of each distinct set of limit settings. A
// reload with the same settings reuses it (local counts survive it); the
// last config to let go closes it, which stops the local store's sweeper,
// so reloads leak no goroutine.
var limiters = caddy.NewUsagePool()

type limiterResource struct{ l *limiter.Limiter }

func (r *limiterResource) Destruct() error {
	metrics.RemoveLimiter(r.l)
	return r.l.Close()
}

// acquireLimiter takes this config's reference to the shared Limiter.
func (a *App) acquireLimiter() error {
	s := a.settings
	hashKey, err := auth.DeriveKey(s.SecretKey, auth.LabelRateLimitKeys)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(hashKey)
	// A reload with another Redis, timeout or memory bound makes a new
	// Limiter with it.
	key := s.RedisURL + "\x00" + s.RateLimitRedisTimeout.String() + "\x00" + strconv.Itoa(s.RateLimitMemoryMaxKeys) + "\x00" + hex.EncodeToString(sum[:])
	logger := a.logger
	val, _, err := limiters.LoadOrNew(key, func() (caddy.Destructor, error) {
		l, err := limiter.New(limiter.Options{
			Client:       a.redis,
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
		return &limiterResource{l: l}, nil
	})
	if err != nil {
		return err
	}
	a.limKey = key
	a.limiter = val.(*limiterResource).l
	return nil
}
