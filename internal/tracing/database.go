package tracing

import (
	"context"
	"database/sql"
	"errors"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// QueryHook is a bun.QueryHook that makes a span per query. The statement
// is left out: bun inlines the arguments, which hold phones and token
// hashes; the span says the operation and the table.
type QueryHook struct {
	// System is the database, as OpenTelemetry names it: "postgresql" or
	// "sqlite".
	System string
}

type spanKey struct{}

// BeforeQuery starts the query's span.
func (h QueryHook) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx
	}
	op := e.Operation()
	name := op
	attrs := []attribute.KeyValue{
		attribute.String("db.system.name", h.System),
		attribute.String("db.operation.name", op),
	}
	if q, ok := e.IQuery.(interface{ GetTableName() string }); ok {
		if table := q.GetTableName(); table != "" {
			name += " " + table
			attrs = append(attrs, attribute.String("db.collection.name", table))
		}
	}
	ctx, span, ok := start(ctx, name, trace.WithAttributes(attrs...))
	if !ok {
		return ctx
	}
	if e.Stash == nil {
		e.Stash = map[any]any{}
	}
	e.Stash[spanKey{}] = span
	return ctx
}

// AfterQuery ends the query's span, marking it failed on an error other
// than "no rows".
func (QueryHook) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	span, ok := e.Stash[spanKey{}].(trace.Span)
	if !ok {
		return
	}
	if e.Err != nil && !errors.Is(e.Err, sql.ErrNoRows) {
		span.SetStatus(codes.Error, "query failed")
	}
	span.End()
}

// Interface guard
var _ bun.QueryHook = QueryHook{}

// Query starts the span of a query that does not go through bun (see
// database.Native): op is the operation ("SELECT"), table the table. The
// returned end marks the span failed on an error other than "no rows";
// both are free when ctx has no recording span.
func Query(ctx context.Context, system, op, table string) (context.Context, func(error)) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, func(error) {}
	}
	ctx, span, ok := start(ctx, op+" "+table, trace.WithAttributes(
		attribute.String("db.system.name", system),
		attribute.String("db.operation.name", op),
		attribute.String("db.collection.name", table),
	))
	if !ok {
		return ctx, func(error) {}
	}
	return ctx, func(err error) {
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			span.SetStatus(codes.Error, "query failed")
		}
		span.End()
	}
}
