package soul

import "os"

// SITE_ADDRESS defaults to ":$PORT" (plain HTTP behind Railway's edge, which
// sets PORT). The Caddyfile cannot say that itself: its {$VAR:default}
// substitution does not nest, so the default is filled in here, before the
// Caddyfile is read, in every binary that includes this module.
func init() {
	if os.Getenv("SITE_ADDRESS") != "" {
		return
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	_ = os.Setenv("SITE_ADDRESS", ":"+port)
}
