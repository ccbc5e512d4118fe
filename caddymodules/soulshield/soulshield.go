// Package soulshield is the `soul_shield` handler: the coarse per-client
// flood guard in front of everything that costs a Redis call or a query.
// It admits at most Events requests per client in any Window and answers
// the rest 429 rate_limited with Retry-After, counting in a fixed 2 MiB of
// memory however many client addresses arrive (internal/shield says how).
//
// A client is its address, an IPv6 one by its network (the soul app's
// RATE_LIMIT_IPV6_PREFIX, /64 by default), taken from Caddy's client IP:
// X-Forwarded-For counts only from trusted proxies.
//
// The counts are per instance: a client spread over N replicas gets up to N
// times the shield. The exact, shared limits are soul_rate_limit's.
package soulshield

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/soulapp/soul/caddymodules/soul"
	"github.com/soulapp/soul/internal/httpapi"
	"github.com/soulapp/soul/internal/problem"
	"github.com/soulapp/soul/internal/shield"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the shield.
const (
	DefaultEvents = 300
	DefaultWindow = 10 * time.Second
)

// Handler is the shield.
type Handler struct {
	// Requests admitted per client in any span of Window. Default 300.
	Events int `json:"events,omitempty"`
	// The span Events applies to, 1s or more. Default 10s.
	Window caddy.Duration `json:"window,omitempty"`

	shield     *shield.Shield
	ipv6Prefix int
	logger     *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.soul_shield",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision applies the defaults and sets up the counters. A reload starts
// them afresh: the shield is coarse, and a window is seconds long.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Events == 0 {
		h.Events = DefaultEvents
	}
	if h.Window == 0 {
		h.Window = caddy.Duration(DefaultWindow)
	}
	if err := h.Validate(); err != nil {
		return err
	}
	app, err := soul.FromContext(ctx)
	if err != nil {
		return err
	}
	h.ipv6Prefix = app.IPv6Prefix()
	h.shield = shield.New(h.Events, time.Duration(h.Window))
	if err := registerMetrics(ctx.GetMetricsRegistry(), h.shield); err != nil {
		return err
	}
	h.logger.Info("shield ready",
		zap.Int("events", h.Events),
		zap.Duration("window", time.Duration(h.Window)),
		zap.Int("ipv6_prefix", h.ipv6Prefix),
		zap.Int("memory_bytes", shield.Bytes))
	return nil
}

// Validate checks the limits.
func (h *Handler) Validate() error {
	if h.Events < 1 {
		return fmt.Errorf("soul_shield: events %d: want 1 or more", h.Events)
	}
	if h.Window < caddy.Duration(time.Second) {
		return fmt.Errorf("soul_shield: window %s: want 1s or more", time.Duration(h.Window))
	}
	return nil
}

// ServeHTTP counts the request against its client and passes it on, or
// answers 429 with Retry-After before any handler behind it runs.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	d := h.shield.Allow(httpapi.Client(r, h.ipv6Prefix))
	if !d.Allowed {
		refusals.Inc()
		e := problem.New(http.StatusTooManyRequests, "rate_limited", "Too many requests; retry later.")
		e.RetryAfter = d.RetryAfter
		return httpapi.Problem(e)
	}
	return next.ServeHTTP(w, r)
}

var refusals = prometheus.NewCounter(prometheus.CounterOpts{
	Namespace: "soul", Name: "shield_refusals_total",
	Help: "Requests refused by the per-client shield.",
})

// registerMetrics adds the shield's figures to reg: its fixed memory and
// its estimate of the clients seen in the current window, read from the
// live shield at scrape time. The shield of the newest config wins.
func registerMetrics(reg *prometheus.Registry, s *shield.Shield) error {
	if reg == nil {
		return nil
	}
	current.Store(s)
	for _, c := range []prometheus.Collector{refusals, memoryBytes, clients} {
		if err := reg.Register(c); err != nil {
			if _, ok := err.(prometheus.AlreadyRegisteredError); !ok {
				return err
			}
		}
	}
	return nil
}

// current is the shield the metrics read: the newest config's.
var current atomic.Pointer[shield.Shield]

var (
	memoryBytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "soul", Name: "shield_memory_bytes",
		Help: "Memory held by the per-client shield's counters: fixed, whatever the number of clients.",
	}, func() float64 {
		if current.Load() == nil {
			return 0
		}
		return shield.Bytes
	})
	clients = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "soul", Name: "shield_clients",
		Help: "Estimated distinct clients (addresses, IPv6 networks) the shield counted in its current window.",
	}, func() float64 {
		if s := current.Load(); s != nil {
			return s.Clients()
		}
		return 0
	})
)

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
