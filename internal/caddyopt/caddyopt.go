// Package caddyopt reads the settings of SOUL's Caddyfile blocks.
//
// A setting such as `timeout {$TWILIO_TIMEOUT}` expands to no value at
// all when the variable is unset, and an unset variable must keep the
// setting's default, so every SOUL block takes its settings as zero or
// one value.
package caddyopt

import "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

// Optional reads the value of the setting the dispenser is on: "" when it
// has none, an error when it has more than one.
func Optional(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", nil
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}
