// Package soul is the SOUL API as a Caddy plugin: importing it registers
// every SOUL module. xcaddy builds the binary with
// `--with github.com/soulapp/soul=./` (see xcaddy.json).
package soul

import _ "github.com/soulapp/soul/caddymodules/all"
