package tracing_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/soulapp/soul/internal/soultest"
)

// collector is a local OTLP/HTTP receiver keeping the spans it is sent.
type collector struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newCollector(t testing.TB) (*collector, string) {
	c := &collector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return c, srv.URL
}

// traceEnv turns tracing on towards the collector at url. The variables
// are set explicitly: the soul app's defaults (exporter none, sampler off)
// were applied when this test binary started.
func traceEnv(url string) map[string]string {
	return map[string]string{
		"OTEL_TRACES_EXPORTER":        "otlp",
		"OTEL_TRACES_SAMPLER":         "always_on",
		"OTEL_EXPORTER_OTLP_ENDPOINT": url,
		"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		"OTEL_BSP_SCHEDULE_DELAY":     "50",
	}
}

// One /healthz request makes a server span with the database query and
// the Redis PING as its children, in the same trace.
func TestQueriesAndRedisCallsAreChildrenOfTheRequestSpan(t *testing.T) {
	c, url := newCollector(t)
	s := soultest.Start(t, soultest.Options{Database: soultest.Postgres, Redis: true, Env: traceEnv(url)})
	// Start's readiness polls are /healthz requests too: any of them (the
	// last server span seen) must show the same shape.
	if resp := s.Do(http.MethodGet, "/healthz", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d (%s)", resp.StatusCode, resp.Body)
	}

	var server *tracepb.Span
	var children []*tracepb.Span
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		server, children = nil, nil
		for _, sp := range c.spans {
			if sp.Kind == tracepb.Span_SPAN_KIND_SERVER {
				server = sp
			}
		}
		if server != nil {
			for _, sp := range c.spans {
				if bytes.Equal(sp.ParentSpanId, server.SpanId) {
					children = append(children, sp)
				}
			}
		}
		c.mu.Unlock()
		if len(children) >= 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if server == nil {
		t.Fatal("no server span reached the collector")
	}
	var db, redis *tracepb.Span
	for _, sp := range children {
		if !bytes.Equal(sp.TraceId, server.TraceId) {
			t.Errorf("span %q is a child of the request span but in another trace", sp.Name)
		}
		if sp.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("span %q kind = %v, want client", sp.Name, sp.Kind)
		}
		switch attr(sp, "db.system.name") {
		case "postgresql":
			db = sp
		case "redis":
			redis = sp
		}
	}
	if db == nil {
		t.Errorf("no database span under the request span %q; children: %v", server.Name, names(children))
	} else if db.Name != "SELECT" {
		t.Errorf("database span name = %q, want SELECT", db.Name)
	}
	if redis == nil {
		t.Errorf("no Redis span under the request span; children: %v", names(children))
	} else if !strings.EqualFold(redis.Name, "PING") {
		t.Errorf("Redis span name = %q, want PING", redis.Name)
	}
}

func attr(sp *tracepb.Span, key string) string {
	for _, kv := range sp.Attributes {
		if kv.Key == key {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

func names(spans []*tracepb.Span) []string {
	var out []string
	for _, sp := range spans {
		out = append(out, sp.Name)
	}
	return out
}

// Tracing on (exported to a local collector, every request sampled)
// against off (the defaults), through the whole server.
func BenchmarkHealthz(b *testing.B) {
	_, url := newCollector(b)
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"tracing=off", nil},
		{"tracing=on", traceEnv(url)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := soultest.Start(b, soultest.Options{Database: soultest.SQLite, Env: tc.env})
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := s.Client.Get(s.BaseURL + "/healthz")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status = %d", resp.StatusCode)
				}
			}
		})
	}
}
