// Command caddy is the SOUL API: Caddy's standard modules and the SOUL
// modules in one static binary. xcaddy.json lists the same set
// for `make build`; a test keeps the two in step.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/soulapp/soul/caddymodules/all"
)

func main() {
	caddycmd.Main()
}
