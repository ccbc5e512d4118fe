package soulstorage

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	var s Storage
	in := "soul_redis {\n\turl {env.REDIS_URL}\n\tprefix soul:certs:\n\tlock_validity 15s\n}"
	if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	if want := (Storage{URL: "{env.REDIS_URL}", Prefix: "soul:certs:", LockValidity: caddy.Duration(15 * time.Second)}); s.URL != want.URL || s.Prefix != want.Prefix || s.LockValidity != want.LockValidity {
		t.Errorf("got %+v, want %+v", s, want)
	}
	for _, in := range []string{
		"soul_redis redis://x",
		"soul_redis {\n\turl\n}",
		"soul_redis {\n\turl a b\n}",
		"soul_redis {\n\tlock_validity never\n}",
		"soul_redis {\n\tpassword x\n}",
	} {
		var s Storage
		if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}
