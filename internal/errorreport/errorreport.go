// Package errorreport sends panics and 5xx answers to Sentry, scrubbed of
// secrets before they leave the process: no headers but a few harmless
// ones, no cookies, bodies or query strings, phone numbers masked, and
// tokens, OTP codes and key=value secrets replaced wherever text appears.
//
// A Reporter is built only when SENTRY_DSN is set; without one nothing is
// started (no client, no transport goroutine).
package errorreport

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/trace"
)

// Config selects where and how reports go.
type Config struct {
	// DSN is the project's Sentry DSN (SENTRY_DSN).
	DSN string
	// Environment names the deployment (SENTRY_ENVIRONMENT).
	Environment string
	// Release is the binary's version.
	Release string
}

// Reporter sends events to one Sentry project.
type Reporter struct {
	client *sentry.Client
}

// ValidateDSN reports whether dsn is a usable Sentry DSN, without echoing
// it (the DSN holds the project's key).
func ValidateDSN(dsn string) error {
	if _, err := sentry.NewDsn(dsn); err != nil {
		return errors.New("SENTRY_DSN is not a valid Sentry DSN")
	}
	return nil
}

// New builds a Reporter; it starts the transport's sending goroutine.
func New(cfg Config) (*Reporter, error) {
	if err := ValidateDSN(cfg.DSN); err != nil {
		return nil, err
	}
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:            cfg.DSN,
		Environment:    cfg.Environment,
		Release:        cfg.Release,
		SendDefaultPII: false,
		BeforeSend: func(e *sentry.Event, _ *sentry.EventHint) *sentry.Event {
			return Scrub(e)
		},
		BeforeBreadcrumb: func(b *sentry.Breadcrumb, _ *sentry.BreadcrumbHint) *sentry.Breadcrumb {
			b.Message = ScrubText(b.Message)
			b.Data = nil
			return b
		},
		// Source lines around each frame stay home too.
		Integrations: func(in []sentry.Integration) []sentry.Integration {
			out := in[:0]
			for _, i := range in {
				if i.Name() != "ContextifyFrames" {
					out = append(out, i)
				}
			}
			return out
		},
	})
	if err != nil {
		return nil, errors.New("SENTRY_DSN: cannot build the Sentry client")
	}
	return &Reporter{client: client}, nil
}

// Panic reports a recovered panic. Call it from the deferred function that
// recovered, so the stack trace shows where the panic happened.
func (rep *Reporter) Panic(r *http.Request, recovered any) {
	e := newEvent(r, sentry.LevelFatal)
	st := sentry.NewStacktrace()
	e.Exception = []sentry.Exception{{
		Type:       "panic",
		Value:      fmt.Sprint(recovered),
		Stacktrace: st,
		Mechanism:  &sentry.Mechanism{Type: "recover", Handled: new(bool)},
	}}
	e.Tags["status"] = "500"
	rep.client.CaptureEvent(e, &sentry.EventHint{RecoveredException: recovered}, nil)
}

// Error reports an error answered with a 5xx status. id is the error's ID
// as logged by Caddy, so the report and the log line can be matched.
func (rep *Reporter) Error(r *http.Request, status int, id string, err error) {
	e := newEvent(r, sentry.LevelError)
	e.Exception = []sentry.Exception{{
		Type:  errorType(err),
		Value: err.Error(),
	}}
	e.Tags["status"] = strconv.Itoa(status)
	if id != "" {
		e.Tags["error_id"] = id
	}
	rep.client.CaptureEvent(e, &sentry.EventHint{OriginalException: err}, nil)
}

// Flush waits up to timeout for queued events to be sent.
func (rep *Reporter) Flush(timeout time.Duration) bool {
	return rep.client.Flush(timeout)
}

// Close stops the transport; the Reporter must not be used afterwards.
func (rep *Reporter) Close() { rep.client.Close() }

// newEvent starts an event about r with only what is safe to send: the
// method and the path, no headers, no query, no body.
func newEvent(r *http.Request, level sentry.Level) *sentry.Event {
	e := sentry.NewEvent()
	e.Level = level
	e.Platform = "go"
	e.Tags = map[string]string{}
	if r == nil {
		return e
	}
	e.Request = &sentry.Request{Method: r.Method, URL: r.URL.Path}
	e.Transaction = r.Method + " " + r.URL.Path
	if ua := r.Header.Get("User-Agent"); ua != "" {
		e.Request.Headers = map[string]string{"User-Agent": ua}
	}
	if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
		e.Tags["trace_id"] = sc.TraceID().String()
	}
	return e
}

// errorType names the innermost error's type, as Sentry groups by it.
func errorType(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
	}
	return reflect.TypeOf(err).String()
}
