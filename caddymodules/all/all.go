// Package all plugs every SOUL module into Caddy: import it (blank) in the
// binary, or name github.com/soulapp/soul in xcaddy's --with.
package all

import (
	_ "github.com/soulapp/soul/caddymodules/otplocal"
	_ "github.com/soulapp/soul/caddymodules/otptwilio"
	_ "github.com/soulapp/soul/caddymodules/soul"
	_ "github.com/soulapp/soul/caddymodules/soulauth"
	_ "github.com/soulapp/soul/caddymodules/soulcmd"
	_ "github.com/soulapp/soul/caddymodules/soulcors"
	_ "github.com/soulapp/soul/caddymodules/souldocs"
	_ "github.com/soulapp/soul/caddymodules/soulhealth"
	_ "github.com/soulapp/soul/caddymodules/soulmetrics"
	_ "github.com/soulapp/soul/caddymodules/soulmoods"
	_ "github.com/soulapp/soul/caddymodules/soulproblem"
	_ "github.com/soulapp/soul/caddymodules/soulratelimit"
	_ "github.com/soulapp/soul/caddymodules/soulsentry"
	_ "github.com/soulapp/soul/caddymodules/soulshield"
	_ "github.com/soulapp/soul/caddymodules/soulstorage"
	_ "github.com/soulapp/soul/caddymodules/soultracing"
)
