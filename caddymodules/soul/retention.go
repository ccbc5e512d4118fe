package soul

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/soulapp/soul/internal/metrics"
	"github.com/soulapp/soul/internal/retention"
)

// DefaultRetentionSweepInterval is how often expired rows are deleted
// unless RETENTION_SWEEP_INTERVAL says otherwise.
const DefaultRetentionSweepInterval = 10 * time.Minute

// sweeper runs retention.Sweep every interval, give or take a tenth, in
// one goroutine per config: Start starts it and Stop waits for it, so a
// reload never leaves two sweeping for one app. Replicas start at a random
// point of the interval, which spreads their sweeps apart.
type sweeper struct {
	app      *App
	interval time.Duration
	cancel   context.CancelFunc
	done     sync.WaitGroup
}

func (s *sweeper) start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		wait := rand.N(s.interval)
		for {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			s.sweepOnce(ctx)
			wait = s.interval - s.interval/10 + rand.N(s.interval/5+1)
		}
	}()
}

func (s *sweeper) stop() {
	if s.cancel != nil {
		s.cancel()
		s.done.Wait()
	}
}

// sweepOnce deletes what has expired and says so, by count only: the rows
// name phones and sessions, and none of that belongs in a log.
func (s *sweeper) sweepOnce(ctx context.Context) {
	started := time.Now()
	counts, err := retention.Sweep(ctx, s.app.db, started, retention.Options{TombstoneRetention: s.app.settings.SyncTombstoneRetention})
	for kind, n := range counts {
		if n > 0 {
			metrics.RetentionDeleted.WithLabelValues(kind).Add(float64(n))
		}
	}
	fields := []zap.Field{
		zap.Int64(retention.Sessions, counts[retention.Sessions]),
		zap.Int64(retention.OTPChallenges, counts[retention.OTPChallenges]),
		zap.Int64(retention.IdempotencyKeys, counts[retention.IdempotencyKeys]),
		zap.Int64(retention.MoodTombstones, counts[retention.MoodTombstones]),
		zap.Duration("took", time.Since(started)),
	}
	switch {
	case err != nil && ctx.Err() != nil:
		// Stopping: the next config or process sweeps again.
	case err != nil:
		metrics.RetentionSweeps.WithLabelValues(metrics.ResultError).Inc()
		s.app.logger.Warn("retention sweep failed; the next one retries", append(fields, zap.Error(err))...)
	default:
		metrics.RetentionSweeps.WithLabelValues(metrics.ResultOK).Inc()
		level := zap.DebugLevel
		if counts.Total() > 0 {
			level = zap.InfoLevel
		}
		s.app.logger.Log(level, "retention sweep", fields...)
	}
}
