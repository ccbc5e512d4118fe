package soulstorage

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the storage, in the `storage` global option:
//
//	storage soul_redis {
//		url           <redis-url>
//		prefix        <key-prefix>
//		lock_validity <duration>
//	}
func (s *Storage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume module name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "url":
			if !d.NextArg() {
				return d.ArgErr()
			}
			s.URL = d.Val()
		case "prefix":
			if !d.NextArg() {
				return d.ArgErr()
			}
			s.Prefix = d.Val()
		case "lock_validity":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("bad lock_validity %q: want a positive duration", d.Val())
			}
			s.LockValidity = caddy.Duration(dur)
		default:
			return d.Errf("unrecognized subdirective %q", d.Val())
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Storage)(nil)
