package auth

import (
	"context"

	"github.com/soulapp/soul/internal/limiter"
	"github.com/soulapp/soul/internal/metrics"
)

// LimitChecks records the rate-limit decisions of the Service calls made
// under a context that carries it (WithLimitChecks), so that a caller can
// tell the client where it stands after any outcome: a code sent, a wrong
// code, a provider failure. Only a refusal travels in the error
// (RetryError.Decision); the others would otherwise need every result and
// error of the Service to carry decisions. One LimitChecks serves one call
// at a time.
type LimitChecks struct {
	decisions []limiter.Decision
}

type limitChecksKey struct{}

// WithLimitChecks returns ctx carrying c: the Service calls made under it
// add their decisions to c.
func WithLimitChecks(ctx context.Context, c *LimitChecks) context.Context {
	return context.WithValue(ctx, limitChecksKey{}, c)
}

// Tightest returns the recorded decision closest to refusing, as
// limiter.Result.Tightest picks it: a refusal first, else the fewest
// requests remaining, ties to the longest reset. It reports false when the
// calls made no check (or c is nil).
func (c *LimitChecks) Tightest() (limiter.Decision, bool) {
	if c == nil || len(c.decisions) == 0 {
		return limiter.Decision{}, false
	}
	return limiter.Result{Decisions: c.decisions}.Tightest(), true
}

// record counts ds in soul_rate_limit_decisions_total, as soul_rate_limit
// counts its own, so the rate-limit alerts see sign-in abuse too, and adds
// them to the LimitChecks of ctx, if it has one. The policy label is the
// rule's name, one of the few fixed names of Limits (the Caddyfile only
// changes their counts and windows); the storage is the store that
// answered. Subjects (phone, client IP) never become labels. A rule with
// room counts as allowed even when another rule of the same call refused,
// so each policy's share of refusals is its own.
func record(ctx context.Context, ds ...limiter.Decision) {
	for _, d := range ds {
		metrics.RateLimitDecisions.WithLabelValues(d.Rule.Name, d.Storage, metrics.Decision(d.Allowed)).Inc()
	}
	if c, ok := ctx.Value(limitChecksKey{}).(*LimitChecks); ok && c != nil {
		c.decisions = append(c.decisions, ds...)
	}
}

// forget drops the decisions of rule from the LimitChecks of ctx: its hits
// were just cleared, so what the check said no longer holds.
func forget(ctx context.Context, rule limiter.Rule) {
	c, ok := ctx.Value(limitChecksKey{}).(*LimitChecks)
	if !ok || c == nil {
		return
	}
	kept := c.decisions[:0]
	for _, d := range c.decisions {
		if d.Rule.Name != rule.Name {
			kept = append(kept, d)
		}
	}
	c.decisions = kept
}
