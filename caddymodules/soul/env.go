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

// Caddy's `tracing` directive exports to localhost:4318 unless told
// otherwise, and would log an export error every few seconds where no
// collector runs. Unless an exporter or an OTLP endpoint is configured
// (the standard OTEL_* variables), traces are neither sampled nor sent.
func init() {
	for _, v := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if os.Getenv(v) != "" {
			return
		}
	}
	_ = os.Setenv("OTEL_TRACES_EXPORTER", "none")
	if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		_ = os.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	}
}
