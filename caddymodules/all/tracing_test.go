package all_test

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/soulapp/soul/caddymodules/soulauth"
	"github.com/soulapp/soul/caddymodules/soulmoods"
	"github.com/soulapp/soul/soultest"
)

// collector is a local OTLP/HTTP receiver keeping the spans it is sent,
// and each export's decoded bytes for tests that search everything.
type collector struct {
	mu        sync.Mutex
	spans     []*tracepb.Span
	resources []*resourcepb.Resource
	bodies    [][]byte
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
		c.bodies = append(c.bodies, b)
		for _, rs := range req.ResourceSpans {
			c.resources = append(c.resources, rs.Resource)
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

// A signed-in GET /api/moods is one server span, in the trace the caller
// named in traceparent, with the database queries and the rate limit's
// Redis EVALSHA as its client children; and no span of the whole sign-in
// and mood flow (names, attributes, events, links, status, resource)
// holds the phone, the code, a token or a mood's text.
func TestSignedInRequestSpansAndNoSecrets(t *testing.T) {
	c, url := newCollector(t)
	s := soultest.Start(t, soultest.Options{Database: soultest.Postgres, Redis: true, Env: traceEnv(url)})
	do := func(method, path string, body any, status int, headers ...string) *soultest.Response {
		t.Helper()
		resp := s.Do(method, path, body, headers...)
		if resp.StatusCode != status {
			t.Fatalf("%s %s: status %d, want %d (%s)", method, path, resp.StatusCode, status, resp.Body)
		}
		return resp
	}

	phone := fmt.Sprintf("+4474008%05d", time.Now().UnixNano()%100000)
	var sent soulauth.OTPSent
	do(http.MethodPost, soulauth.PathOTPRequest, map[string]string{"phone": phone}, http.StatusOK).JSON(t, &sent)
	var pair soulauth.TokenPair
	do(http.MethodPost, soulauth.PathVerifyOTP, map[string]string{"phone": phone, "code": sent.PreviewCode}, http.StatusOK).JSON(t, &pair)
	bearer := "Bearer " + pair.AccessToken
	note, label := "traced-note-"+soultest.RandomHex(8), "traced-label-"+soultest.RandomHex(4)
	do(http.MethodPost, soulmoods.PathMoods, map[string]any{"score": 6, "label": label, "note": note, "tags": []string{"work"}},
		http.StatusCreated, "Authorization", bearer)
	traceID, parentID := soultest.RandomHex(16), soultest.RandomHex(8)
	do(http.MethodGet, soulmoods.PathMoods, nil, http.StatusOK,
		"Authorization", bearer, "traceparent", "00-"+traceID+"-"+parentID+"-01")
	// The flow's last request, in a trace of its own: once its span is
	// exported, so are the others'.
	lastTrace := soultest.RandomHex(16)
	var next soulauth.TokenPair
	do(http.MethodPost, soulauth.PathRefresh, map[string]string{"refresh_token": pair.RefreshToken}, http.StatusOK,
		"traceparent", "00-"+lastTrace+"-"+soultest.RandomHex(8)+"-01").JSON(t, &next)

	// The request span of the GET and its children, once exported.
	var server *tracepb.Span
	var children []*tracepb.Span
	var db, evalsha []*tracepb.Span
	var last bool
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		server, children, db, evalsha, last = nil, nil, nil, nil, false
		for _, sp := range c.spans {
			if sp.Kind == tracepb.Span_SPAN_KIND_SERVER {
				switch hex.EncodeToString(sp.TraceId) {
				case traceID:
					server = sp
				case lastTrace:
					last = true
				}
			}
		}
		if server != nil {
			for _, sp := range c.spans {
				if !bytes.Equal(sp.ParentSpanId, server.SpanId) {
					continue
				}
				children = append(children, sp)
				switch {
				case attr(sp, "db.system.name") == "postgresql":
					db = append(db, sp)
				case attr(sp, "db.system.name") == "redis" && strings.EqualFold(sp.Name, "EVALSHA"):
					evalsha = append(evalsha, sp)
				}
			}
		}
		c.mu.Unlock()
		if len(db) > 0 && len(evalsha) > 0 && last {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if server == nil || !last {
		t.Fatalf("the server spans of GET /api/moods (%v) or of the last refresh (%v) did not reach the collector", server != nil, last)
	}
	if got := hex.EncodeToString(server.ParentSpanId); got != parentID {
		t.Errorf("request span's parent = %s, want the caller's %s", got, parentID)
	}
	if len(db) == 0 {
		t.Errorf("no database span under GET /api/moods; children: %v", names(children))
	}
	// Named by operation and table: the list itself, and any other read
	// (the session check), never a write.
	var list bool
	for _, sp := range db {
		list = list || sp.Name == "SELECT moods"
		if !strings.HasPrefix(sp.Name, "SELECT ") || attr(sp, "db.operation.name") != "SELECT" {
			t.Errorf("database span %q (operation %q) under a read-only request", sp.Name, attr(sp, "db.operation.name"))
		}
	}
	if !list {
		t.Errorf("no SELECT moods span under GET /api/moods; children: %v", names(children))
	}
	if len(evalsha) != 1 {
		t.Errorf("%d Redis EVALSHA spans under GET /api/moods, want 1 (the default policy); children: %v", len(evalsha), names(children))
	}
	for _, sp := range children {
		if sp.Kind != tracepb.Span_SPAN_KIND_CLIENT || !bytes.Equal(sp.TraceId, server.TraceId) {
			t.Errorf("child span %q: kind %v in trace %x, want a client span in %s", sp.Name, sp.Kind, sp.TraceId, traceID)
		}
	}

	// Everything exported for the flow, decoded, then the raw exports too.
	secrets := map[string]string{
		"phone": strings.TrimPrefix(phone, "+"), "phone's national digits": phone[3:],
		"code": sent.PreviewCode, "access token": pair.AccessToken, "refresh token": pair.RefreshToken,
		"access token payload":  strings.Split(pair.AccessToken, ".")[1],
		"rotated refresh token": next.RefreshToken, "mood note": note, "mood label": label,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var texts []string
	for _, sp := range c.spans {
		texts = append(texts, spanTexts(sp)...)
	}
	for _, r := range c.resources {
		texts = append(texts, attrTexts(r.GetAttributes())...)
	}
	if len(c.spans) < 10 || !slices.Contains(texts, "EVALSHA") {
		t.Fatalf("only %d spans exported for the flow; is the collector getting them?", len(c.spans))
	}
	for what, secret := range secrets {
		for _, text := range texts {
			if strings.Contains(text, secret) {
				t.Errorf("a span holds the %s: %q", what, text)
			}
		}
		for _, b := range c.bodies {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("an export holds the %s", what)
				break
			}
		}
	}
}

// spanTexts lists every string a span carries: name, attributes, events,
// links and status message.
func spanTexts(sp *tracepb.Span) []string {
	out := append([]string{sp.Name, sp.TraceState, sp.GetStatus().GetMessage()}, attrTexts(sp.Attributes)...)
	for _, ev := range sp.Events {
		out = append(out, ev.Name)
		out = append(out, attrTexts(ev.Attributes)...)
	}
	for _, l := range sp.Links {
		out = append(out, l.TraceState)
		out = append(out, attrTexts(l.Attributes)...)
	}
	return out
}

func attrTexts(kvs []*commonpb.KeyValue) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, kv.Key)
		out = append(out, valueTexts(kv.Value)...)
	}
	return out
}

func valueTexts(v *commonpb.AnyValue) []string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return []string{x.StringValue}
	case *commonpb.AnyValue_IntValue:
		return []string{strconv.FormatInt(x.IntValue, 10)}
	case *commonpb.AnyValue_BytesValue:
		return []string{string(x.BytesValue)}
	case *commonpb.AnyValue_ArrayValue:
		var out []string
		for _, e := range x.ArrayValue.Values {
			out = append(out, valueTexts(e)...)
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		return attrTexts(x.KvlistValue.Values)
	}
	return nil
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
			s := soultest.Start(b, soultest.Options{Database: soultest.SQLite, Env: tc.env,
				Unchecked: "a benchmark: the figures are the server's alone"})
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
