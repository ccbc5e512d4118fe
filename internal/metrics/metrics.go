// Package metrics holds the SOUL API's own Prometheus collectors. Every
// label has a small, fixed set of values (a result, a policy name from the
// config, a storage kind): never a user id, phone, mood id or raw path.
//
// The collectors are package-level so their counts survive config reloads;
// Register adds them to the registry of each config (Caddy gives every
// config its own), which Caddy serves at the admin endpoint's /metrics and
// the soul_metrics app on METRICS_ADDRESS.
package metrics

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "soul"

// Results of OTP sends and checks, refreshes.
const (
	ResultOK            = "ok"
	ResultInvalidPhone  = "invalid_phone"
	ResultInvalidCode   = "invalid_code"
	ResultExpired       = "expired"
	ResultTooManyTries  = "too_many_attempts"
	ResultLimited       = "limited"
	ResultProviderError = "provider_error"
	ResultInvalid       = "invalid"
	ResultReused        = "reused"
	ResultError         = "error"

	ResultCountryNotAllowed = "country_not_allowed"
	ResultNotSupported      = "not_supported"
	ResultBudgetExhausted   = "budget_exhausted"
)

// Scopes of the SMS budget (soul_otp_budget_refusals_total).
const (
	ScopeGlobal  = "global"
	ScopeCountry = "country"
)

var (
	// OTPSends counts code requests by result.
	OTPSends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "otp_sends_total",
		Help: "Sign-in code requests by result (ok, invalid_phone, country_not_allowed, not_supported, limited, budget_exhausted, provider_error, error).",
	}, []string{"result"})
	// OTPBudgetRefusals counts code requests refused by the SMS budget, by
	// the scope of the budget that refused: global or country. The country
	// itself is never a label.
	OTPBudgetRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "otp_budget_refusals_total",
		Help: "Sign-in code requests refused by the SMS budget, by scope (global, country).",
	}, []string{"scope"})
	// OTPChecks counts code verifications by result.
	OTPChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "otp_checks_total",
		Help: "Sign-in code checks by result (ok, invalid_code, expired, too_many_attempts, limited, provider_error, invalid_phone, error).",
	}, []string{"result"})
	// Refreshes counts refresh-token rotations by result; "reused" is a
	// detected reuse that revoked its session.
	Refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "refreshes_total",
		Help: "Refresh-token rotations by result (ok, invalid, reused, limited, error).",
	}, []string{"result"})
	// RateLimitDecisions counts the decisions of soul_rate_limit's policies
	// and of soul_auth's sign-in limits (otp_request, otp_send, otp_verify,
	// otp_attempts, refresh...), one per rule checked.
	RateLimitDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "rate_limit_decisions_total",
		Help: "Rate-limit decisions by policy, storage (redis, local) and decision (allowed, limited).",
	}, []string{"policy", "storage", "decision"})
	// RedisErrors counts the Redis failures that sent the limiter to
	// per-instance memory (at most one per back-off).
	RedisErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "rate_limit_redis_errors_total",
		Help: "Redis failures that sent rate limits to per-instance memory (at most one per back-off).",
	})
	// ErrorReports counts errors sent to Sentry.
	ErrorReports = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "error_reports_total",
		Help: "Errors reported to Sentry, by kind (panic, server_error).",
	}, []string{"kind"})
	// RetentionDeleted counts rows deleted by the retention sweep.
	RetentionDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "retention_deleted_total",
		Help: "Rows deleted by the retention sweep, by kind (sessions, otp_challenges, idempotency_keys).",
	}, []string{"kind"})
	// RetentionSweeps counts retention sweeps by result (ok, error).
	RetentionSweeps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "retention_sweeps_total",
		Help: "Retention sweeps by result (ok, error).",
	}, []string{"result"})
)

func init() {
	// Both scopes are exported from the start, at 0, so that the first
	// refusal is an increase an alert sees.
	OTPBudgetRefusals.WithLabelValues(ScopeGlobal)
	OTPBudgetRefusals.WithLabelValues(ScopeCountry)
}

var all = []prometheus.Collector{OTPSends, OTPBudgetRefusals, OTPChecks, Refreshes, RateLimitDecisions, RedisErrors, ErrorReports, RetentionDeleted, RetentionSweeps,
	limiterSum("rate_limit_fallbacks_total", prometheus.CounterValue,
		"Rate-limit checks answered from per-instance memory because Redis was down.",
		func(l LimiterStats) float64 { return float64(l.Fallbacks()) }),
	limiterSum("rate_limit_memory_keys", prometheus.GaugeValue,
		"Keys held by the in-memory rate-limit store (bounded by RATE_LIMIT_MEMORY_MAX_KEYS).",
		func(l LimiterStats) float64 { return float64(l.LocalKeys()) }),
	limiterSum("rate_limit_memory_evictions_total", prometheus.CounterValue,
		"Keys the in-memory rate-limit store evicted to stay within its bound.",
		func(l LimiterStats) float64 { return float64(l.LocalEvictions()) }),
	limiterSum("rate_limit_pending_deletes", prometheus.GaugeValue,
		"Rate-limit keys waiting for Redis to answer again to be deleted (account deletions, new codes during an outage).",
		func(l LimiterStats) float64 { return float64(l.PendingDeletes()) }),
	limiterSum("rate_limit_pending_deletes_dropped_total", prometheus.CounterValue,
		"Rate-limit key deletions given up because too many were waiting for Redis; those keys expire with their windows.",
		func(l LimiterStats) float64 { return float64(l.DroppedDeletes()) }),
	issuerSum("access_token_cache_entries", prometheus.GaugeValue,
		"Verified access tokens remembered in memory, so a token seen before is not checked again (bounded per config).",
		func(i IssuerStats) float64 { return float64(i.CachedTokens()) }),
	issuerSum("access_token_cache_clears_total", prometheus.CounterValue,
		"Times the verified-token cache was full of live tokens and was emptied.",
		func(i IssuerStats) float64 { return float64(i.CacheClears()) }),
}

// LimiterStats is what the live rate limiters report.
type LimiterStats interface {
	Fallbacks() uint64
	LocalKeys() int
	LocalEvictions() uint64
	PendingDeletes() int
	DroppedDeletes() uint64
}

// IssuerStats is what the live access-token issuers report.
type IssuerStats interface {
	CachedTokens() int
	CacheClears() uint64
}

var limiters, issuers sync.Map

// AddLimiter reports l's figures in the soul_rate_limit_* metrics until
// RemoveLimiter(l); the figures of several live limiters (a reload in
// progress) are added up.
func AddLimiter(l LimiterStats) { limiters.Store(l, struct{}{}) }

// RemoveLimiter stops reporting l.
func RemoveLimiter(l LimiterStats) { limiters.Delete(l) }

// AddIssuer reports i's figures in the soul_access_token_* metrics until
// RemoveIssuer(i), added up like the limiters'.
func AddIssuer(i IssuerStats) { issuers.Store(i, struct{}{}) }

// RemoveIssuer stops reporting i.
func RemoveIssuer(i IssuerStats) { issuers.Delete(i) }

func limiterSum(name string, kind prometheus.ValueType, help string, f func(LimiterStats) float64) prometheus.Collector {
	return liveSum(&limiters, name, kind, help, f)
}

func issuerSum(name string, kind prometheus.ValueType, help string, f func(IssuerStats) float64) prometheus.Collector {
	return liveSum(&issuers, name, kind, help, f)
}

// liveSum is a metric read at scrape time: f summed over the members of
// live.
func liveSum[S any](live *sync.Map, name string, kind prometheus.ValueType, help string, f func(S) float64) prometheus.Collector {
	sum := func() float64 {
		var n float64
		live.Range(func(k, _ any) bool {
			n += f(k.(S))
			return true
		})
		return n
	}
	opts := prometheus.Opts{Namespace: namespace, Name: name, Help: help}
	if kind == prometheus.CounterValue {
		return prometheus.NewCounterFunc(prometheus.CounterOpts(opts), sum)
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts), sum)
}

// Register adds the collectors to reg; registering twice is not an error,
// so every module's Provision may call it.
func Register(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range all {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// Decision names a rate-limit outcome.
func Decision(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "limited"
}

// Health reports whether the database and Redis answer, as gauges checked
// when Prometheus scrapes: no goroutine to outlive a config.
type Health struct {
	check func(context.Context) (db, redis, redisConfigured bool)
	desc  *prometheus.Desc
}

// NewHealth returns the collector of soul_health_up; check must bound its
// own time.
func NewHealth(check func(context.Context) (db, redis, redisConfigured bool)) *Health {
	return &Health{check: check, desc: prometheus.NewDesc(namespace+"_health_up",
		"1 when the dependency answered its health check at scrape time (database, redis; redis only when configured).",
		[]string{"dependency"}, nil)}
}

// Describe implements prometheus.Collector.
func (h *Health) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect implements prometheus.Collector.
func (h *Health) Collect(ch chan<- prometheus.Metric) {
	db, redis, redisConfigured := h.check(context.Background())
	ch <- prometheus.MustNewConstMetric(h.desc, prometheus.GaugeValue, b2f(db), "database")
	if redisConfigured {
		ch <- prometheus.MustNewConstMetric(h.desc, prometheus.GaugeValue, b2f(redis), "redis")
	}
}

// RegisterHealth adds h to reg unless an equal collector is already there
// (a second /healthz route of the same config).
func RegisterHealth(reg *prometheus.Registry, h *Health) {
	if reg != nil {
		_ = reg.Register(h)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
