package soulmetrics

import (
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("soul_metrics", parseGlobalOption)
}

// parseGlobalOption sets up the `soul_metrics` app:
//
//	{
//		soul_metrics {
//			address <host:port>
//		}
//	}
//
// Use {env.METRICS_ADDRESS}: an empty value turns the server off.
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next() // option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "address":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			app.Address = d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		default:
			return nil, d.Errf("unrecognized subdirective %q", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "soul_metrics", Value: caddyconfig.JSON(app, nil)}, nil
}
