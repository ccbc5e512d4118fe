package tracing

import (
	"context"

	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Redis wraps client so Do and DoMulti make a span per call, named by the
// command (never its arguments, which hold keys derived from phones).
func Redis(client rueidis.Client) rueidis.Client {
	return tracedRedis{client}
}

type tracedRedis struct{ rueidis.Client }

var redisSystem = attribute.String("db.system.name", "redis")

func (c tracedRedis) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	// Checked before building the span's options, which allocate.
	if !trace.SpanFromContext(ctx).IsRecording() {
		return c.Client.Do(ctx, cmd)
	}
	ctx, span, ok := start(ctx, commandName(cmd.Commands()), trace.WithAttributes(redisSystem))
	res := c.Client.Do(ctx, cmd)
	if ok {
		end(span, res.Error())
	}
	return res
}

func (c tracedRedis) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return c.Client.DoMulti(ctx, cmds...)
	}
	name := "pipeline"
	if len(cmds) == 1 {
		name = commandName(cmds[0].Commands())
	}
	ctx, span, ok := start(ctx, name, trace.WithAttributes(redisSystem, attribute.Int("db.operation.batch.size", len(cmds))))
	res := c.Client.DoMulti(ctx, cmds...)
	if ok {
		var err error
		for _, r := range res {
			if e := r.Error(); e != nil && !rueidis.IsRedisNil(e) {
				err = e
				break
			}
		}
		end(span, err)
	}
	return res
}

func commandName(args []string) string {
	if len(args) == 0 {
		return "redis"
	}
	return args[0]
}

func end(span trace.Span, err error) {
	if err != nil && !rueidis.IsRedisNil(err) {
		span.SetStatus(codes.Error, "redis call failed")
	}
	span.End()
}
