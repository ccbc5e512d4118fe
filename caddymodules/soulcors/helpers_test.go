package soulcors

import (
	"context"
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

func withReplacer(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
}
