// Package tracing adds spans for our database queries and Redis calls to
// the request's trace. Caddy's `tracing` directive starts the request span
// with its own tracer provider (not OpenTelemetry's global one), so these
// spans are started from the provider of the span already in the context:
// a request without a recording span (tracing off, or not sampled) costs
// one context lookup and makes no span.
package tracing

import (
	"context"

	"go.opentelemetry.io/otel/trace"
)

// instrumentation names this package as the spans' source.
const instrumentation = "github.com/soulapp/soul/internal/tracing"

// start begins a client span under the recording span of ctx; ok is false
// (and ctx unchanged) when there is none.
func start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span, bool) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, nil, false
	}
	opts = append(opts, trace.WithSpanKind(trace.SpanKindClient))
	ctx, span := parent.TracerProvider().Tracer(instrumentation).Start(ctx, name, opts...)
	return ctx, span, true
}
