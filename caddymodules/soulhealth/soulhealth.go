// Package soulhealth answers /healthz: whether this instance can reach its
// database and Redis, for Railway's deploy checks and the on-call engineer.
package soulhealth

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/redis/rueidis"
	"github.com/uptrace/bun"
	"go.uber.org/zap"

	"github.com/soulapp/soul/caddymodules/soul"
	"github.com/soulapp/soul/internal/database"
	"github.com/soulapp/soul/internal/httpapi"
	"github.com/soulapp/soul/internal/metrics"
	"github.com/soulapp/soul/internal/version"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler answers GET and HEAD with the instance's health:
// 200 ok, 200 degraded (Redis configured but down: limits fall back to
// memory, the API still serves), 503 unavailable (database down).
type Handler struct {
	// How long the database check may take. Default 1s.
	DatabaseTimeout caddy.Duration `json:"database_timeout,omitempty"`
	// How long the Redis check may take. Default 500ms.
	RedisTimeout caddy.Duration `json:"redis_timeout,omitempty"`

	db     *bun.DB
	redis  rueidis.Client
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.soul_health",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the shared database and Redis client.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	app, err := soul.FromContext(ctx)
	if err != nil {
		return err
	}
	h.db, h.redis = app.DB(), app.Redis()
	if h.DatabaseTimeout <= 0 {
		h.DatabaseTimeout = caddy.Duration(time.Second)
	}
	if h.RedisTimeout <= 0 {
		h.RedisTimeout = caddy.Duration(500 * time.Millisecond)
	}
	metrics.RegisterHealth(ctx.GetMetricsRegistry(), metrics.NewHealth(func(ctx context.Context) (bool, bool, bool) {
		rep := h.Check(ctx)
		return rep.DB, rep.Redis, h.redis != nil
	}))
	return nil
}

// Report is the body of a /healthz answer.
type Report struct {
	Status  string `json:"status"`
	DB      bool   `json:"db"`
	Redis   bool   `json:"redis"`
	Version string `json:"version"`
}

// ServeHTTP checks the database and Redis at once, each under its timeout.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return httpapi.MethodNotAllowed(http.MethodGet, http.MethodHead)
	}
	rep := h.Check(r.Context())
	status := http.StatusOK
	if !rep.DB {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", strconv.Itoa(int(httpapi.UnavailableRetryAfter/time.Second)))
	}
	if r.Method == http.MethodHead {
		return httpapi.WriteJSONHead(w, status, rep)
	}
	return httpapi.WriteJSON(w, status, rep)
}

// Check runs the checks and derives the status.
func (h *Handler) Check(ctx context.Context) Report {
	rep := Report{Version: version.Version}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := database.Ping(ctx, h.db, time.Duration(h.DatabaseTimeout))
		rep.DB = err == nil
		if err != nil && h.logger.Core().Enabled(zap.WarnLevel) {
			h.logger.Warn("health: database check failed", zap.Error(err))
		}
	}()
	if h.redis != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, time.Duration(h.RedisTimeout))
			defer cancel()
			err := h.redis.Do(rctx, h.redis.B().Ping().Build()).Error()
			rep.Redis = err == nil
			if err != nil && h.logger.Core().Enabled(zap.WarnLevel) {
				h.logger.Warn("health: redis check failed", zap.Error(err))
			}
		}()
	}
	wg.Wait()
	switch {
	case !rep.DB:
		rep.Status = "unavailable"
	case h.redis != nil && !rep.Redis:
		rep.Status = "degraded"
	default:
		rep.Status = "ok"
	}
	return rep
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
