package soulratelimit

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	good := map[string]Handler{
		"soul_rate_limit":         {},
		"soul_rate_limit default": {Policy: "default"},
		"soul_rate_limit moods {\n\tlimit 30\n\twindow 10s\n\tkey ip\n}": {
			Policy: "moods", Limit: 30, Window: caddy.Duration(10 * time.Second), Key: KeyIP,
		},
	}
	for in, want := range good {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if h.Policy != want.Policy || h.Limit != want.Limit || h.Window != want.Window || h.Key != want.Key {
			t.Errorf("%q = %+v, want %+v", in, h, want)
		}
	}
	bad := []string{
		"soul_rate_limit a b",
		"soul_rate_limit {\n\tlimit\n}",
		"soul_rate_limit {\n\tlimit 0\n}",
		"soul_rate_limit {\n\tlimit 10 20\n}",
		"soul_rate_limit {\n\twindow soon\n}",
		"soul_rate_limit {\n\tkey phone\n}",
		"soul_rate_limit {\n\tburst 5\n}",
	}
	for _, in := range bad {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestValidate(t *testing.T) {
	for name, h := range map[string]Handler{
		"bad name":     {Policy: "a:b", Limit: 1, Window: caddy.Duration(time.Minute), Key: KeyIP},
		"short window": {Policy: "p", Limit: 1, Window: caddy.Duration(time.Millisecond), Key: KeyIP},
		"bad key":      {Policy: "p", Limit: 1, Window: caddy.Duration(time.Minute), Key: "phone"},
	} {
		if err := h.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
