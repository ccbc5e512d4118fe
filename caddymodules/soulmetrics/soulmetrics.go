// Package soulmetrics is the `soul_metrics` app: it serves the running
// config's Prometheus metrics (Caddy's own and SOUL's, see internal/metrics)
// on an internal address of its own, METRICS_ADDRESS, away from the public
// site and from the admin endpoint (which also serves /metrics, but can
// change the config and so must stay on localhost).
//
// With no address the app serves nothing. The listener comes from Caddy's
// listener pool, so a reload with the same address keeps serving.
package soulmetrics

import (
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/soulapp/soul/internal/metrics"
)

func init() {
	caddy.RegisterModule(App{})
}

// App serves GET /metrics on Address.
type App struct {
	// host:port to serve /metrics on, such as 127.0.0.1:9090 or, on a
	// private network, [::]:9090. Empty (the default) serves nothing.
	// May hold placeholders; empty reads METRICS_ADDRESS.
	Address string `json:"address,omitempty"`

	addr     string
	ctx      caddy.Context
	registry *prometheus.Registry
	server   *http.Server
	ln       net.Listener
	logger   *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "soul_metrics",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision resolves the address and registers SOUL's collectors, so they
// are on the registry even before a handler provisions.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	a.registry = ctx.GetMetricsRegistry()
	if err := metrics.Register(a.registry); err != nil {
		return err
	}
	v := a.Address
	if v == "" {
		v = os.Getenv("METRICS_ADDRESS")
	}
	a.addr = strings.TrimSpace(caddy.NewReplacer().ReplaceAll(v, ""))
	if a.addr == "off" {
		a.addr = ""
	}
	if a.addr != "" {
		if _, err := caddy.ParseNetworkAddress(a.addr); err != nil {
			return errors.New("METRICS_ADDRESS must be host:port, such as 127.0.0.1:9090")
		}
	}
	return nil
}

// Start listens on the address, when there is one.
func (a *App) Start() error {
	if a.addr == "" {
		return nil
	}
	na, err := caddy.ParseNetworkAddress(a.addr)
	if err != nil {
		return err
	}
	ln, err := na.Listen(a.ctx, 0, net.ListenConfig{})
	if err != nil {
		return err
	}
	a.ln = ln.(net.Listener)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{
		ErrorLog: zap.NewStdLog(a.logger),
		Timeout:  10 * time.Second,
	}))
	a.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := a.server.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			a.logger.Error("metrics server stopped", zap.Error(err))
		}
	}()
	a.logger.Info("serving metrics", zap.String("address", a.ln.Addr().String()))
	return nil
}

// Stop closes this config's server; a new config on the same address has
// its own reference to the pooled listener.
func (a *App) Stop() error {
	if a.server == nil {
		return nil
	}
	return a.server.Close()
}

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)
