package otel_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jaegerclient "github.com/uber/jaeger-client-go"
	jaegerprop "go.opentelemetry.io/contrib/propagators/jaeger"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/tracing"
	"github.com/rpcguard/rpcguard/tracing/jaeger"
	rgotel "github.com/rpcguard/rpcguard/tracing/otel"
)

// guardedServer starts an Echo node whose server span is tg's (rpcguard's
// server interceptor).
func guardedServer(t testing.TB, id string, tg *tracing.Tracing) *echo.Server {
	t.Helper()
	n, err := echo.Start(id, grpc.ChainUnaryInterceptor(tg.UnaryServerInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Kill)
	return n
}

func jaegerTracing(t testing.TB) (*tracing.Tracing, *jaegerclient.InMemoryReporter) {
	t.Helper()
	rep := jaegerclient.NewInMemoryReporter()
	tr, closer, err := jaeger.New("seeds", jaeger.WithInMemoryReporter(rep))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closer.Close() })
	tg, err := tracing.New(tracing.WithTracer(tr))
	if err != nil {
		t.Fatal(err)
	}
	return tg, rep
}

// otelID and jaegerID compare the two libraries' IDs.
func otelTrace(id trace.TraceID) jaegerclient.TraceID {
	return jaegerclient.TraceID{High: binary.BigEndian.Uint64(id[:8]), Low: binary.BigEndian.Uint64(id[8:])}
}

func otelSpan(id trace.SpanID) jaegerclient.SpanID {
	return jaegerclient.SpanID(binary.BigEndian.Uint64(id[:]))
}

// (b) A mixed fleet: a client on the seeds' Jaeger set-up calls node A on
// OpenTelemetry, whose handler calls node B on Jaeger. With OpenTelemetry's
// Jaeger propagator (alone or beside W3C) the six spans are one trace; with
// W3C alone, the Jaeger side cannot read it and the trace splits at each
// change of API.
func TestMixedFleetJaegerAndOtel(t *testing.T) {
	for _, c := range []struct {
		name string
		prop propagation.TextMapPropagator
		one  bool
	}{
		{"W3C only", w3c, false},
		{"Jaeger propagator", jaegerprop.Jaeger{}, true},
		{"W3C and Jaeger", propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, jaegerprop.Jaeger{}, propagation.Baggage{}), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			jtg, rep := jaegerTracing(t)
			tp, sr := newProvider(t)
			otg := newTracing(t, tp, rgotel.WithPropagator(c.prop))
			b := guardedServer(t, "b", jtg)
			a := guardedServer(t, "a", otg)
			toB := client(t, otg, nil, b)
			a.SetFault(func(ctx context.Context, _ string) error {
				_, err := echo.Unary(ctx, toB, grpc.WaitForReady(true))
				return err
			})
			cc := client(t, jtg, nil, a)
			if _, err := echo.Unary(context.Background(), cc, grpc.WaitForReady(true)); err != nil {
				t.Fatal(err)
			}
			testcluster.WaitFor(t, 5*time.Second, "6 spans", func() bool { return len(rep.GetSpans()) == 3 && len(sr.Ended()) == 3 })
			var jcall, jattempt, jserver *jaegerclient.Span
			for _, s := range rep.GetSpans() {
				js := s.(*jaegerclient.Span)
				switch {
				case strings.HasSuffix(js.OperationName(), " attempt"):
					jattempt = js
				case fmt.Sprint(js.Tags()["span.kind"]) == "server":
					jserver = js
				default:
					jcall = js
				}
			}
			var oserver, oattempt sdktrace.ReadOnlySpan
			for _, s := range sr.Ended() {
				switch {
				case s.SpanKind() == trace.SpanKindServer:
					oserver = s
				case strings.HasSuffix(s.Name(), " attempt"):
					oattempt = s
				}
			}
			if jcall == nil || jattempt == nil || jserver == nil || oserver == nil || oattempt == nil {
				t.Fatalf("spans missing: Jaeger %v, OTel:\n%s", rep.GetSpans(), tree(sr.Ended()))
			}
			t.Logf("Jaeger: call %v, attempt %v, B's server %v (parent %v); OTel:\n%s", jcall.SpanContext().SpanID(), jattempt.SpanContext().SpanID(),
				jserver.SpanContext().SpanID(), jserver.SpanContext().ParentID(), tree(sr.Ended()))
			intoOtel := otelTrace(oserver.SpanContext().TraceID()) == jcall.SpanContext().TraceID() && otelSpan(oserver.Parent().SpanID()) == jattempt.SpanContext().SpanID()
			backToJaeger := jserver.SpanContext().TraceID() == jcall.SpanContext().TraceID() && jserver.SpanContext().ParentID() == otelSpan(oattempt.SpanContext().SpanID())
			if intoOtel != c.one || backToJaeger != c.one {
				t.Errorf("Jaeger → OTel joined %v, OTel → Jaeger joined %v; want %v", intoOtel, backToJaeger, c.one)
			}
		})
	}
}

// (d) Baggage set through OpenTelemetry's API reaches the server (an
// rpcguard server on OpenTelemetry, whose handler reads it, and its server
// span, through OpenTelemetry's API), non-ASCII values included; baggage
// over the header bound (2 KiB here, 8 KiB by default: OpenTelemetry's
// own limit for baggage) is dropped, counted, and the call still succeeds.
func TestOtelBaggageReachesTheServerBounded(t *testing.T) {
	tp, sr := newProvider(t)
	var oversized atomic.Int32
	tg := newTracing(t, tp, rgotel.WithTracing(tracing.WithMaxHeaderBytes(2<<10), tracing.WithHooks(tracing.Hooks{OnOversized: func(int) { oversized.Add(1) }})))
	type seen struct {
		tenant string
		span   trace.SpanID
	}
	got := make(chan seen, 1)
	n := guardedServer(t, "n", tg)
	n.SetFault(func(ctx context.Context, _ string) error {
		got <- seen{baggage.FromContext(ctx).Member("tenant").Value(), trace.SpanFromContext(ctx).SpanContext().SpanID()}
		return nil
	})
	cc := client(t, tg, nil, n)
	call := func(value string) seen {
		t.Helper()
		m, err := baggage.NewMemberRaw("tenant", value)
		if err != nil {
			t.Fatal(err)
		}
		bag, err := baggage.New(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := echo.Unary(baggage.ContextWithBaggage(context.Background(), bag), cc, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("call with baggage %.20q…: %v", value, err)
		}
		return <-got
	}
	for _, v := range []string{"acme", "José ü 東京", "a,b;c=d %41"} {
		s := call(v)
		if s.tenant != v {
			t.Errorf("server read baggage %q, want %q", s.tenant, v)
		}
		testcluster.WaitFor(t, 5*time.Second, "the server span", func() bool {
			for _, e := range sr.Ended() {
				if e.SpanKind() == trace.SpanKindServer && e.SpanContext().SpanID() == s.span {
					return true
				}
			}
			return false
		})
	}
	if s := call(strings.Repeat("x", 4<<10)); s.tenant != "" || oversized.Load() != 1 {
		t.Errorf("4 KiB of baggage over a 2 KiB bound: server read %d bytes, oversized counted %d; want 0 and 1", len(s.tenant), oversized.Load())
	}
}

// Remote clients we do not control send malformed, oversized or hostile
// W3C headers: every call succeeds, and its server span starts a trace of
// its own (or continues a valid traceparent, with the bad baggage left out).
func TestMalformedW3CHeadersFromRemoteClients(t *testing.T) {
	tp, sr := newProvider(t)
	tg := newTracing(t, tp)
	n := guardedServer(t, "n", tg)
	var bags []string
	var mu sync.Mutex
	n.SetFault(func(ctx context.Context, _ string) error {
		mu.Lock()
		bags = append(bags, baggage.FromContext(ctx).String())
		mu.Unlock()
		return nil
	})
	bare := testcluster.Dial(t, "passthrough:///"+n.Addr)
	valid := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, md := range [][]string{
		{"traceparent", "00-zzzz-yyyy-01"},
		{"traceparent", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		{"traceparent", "00-00000000000000000000000000000000-0000000000000000-01"},
		{"traceparent", valid + strings.Repeat("-x", 5000)},
		{"traceparent", valid, "tracestate", strings.Repeat("k=v,", 3000)},
		{"traceparent", valid, "tracestate", "===,,,@@@"},
		{"traceparent", valid, "baggage", "=;;,=%%,%FF%FE=%C3%28"},
		{"traceparent", valid, "baggage", strings.Repeat("k=v,", 3000)},
	} {
		before := len(sr.Ended())
		ctx := metadata.AppendToOutgoingContext(context.Background(), md...)
		if _, err := echo.Unary(ctx, bare, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("headers %.60q: %v", md, err)
		}
		testcluster.WaitFor(t, 5*time.Second, "the server span", func() bool { return len(sr.Ended()) > before })
		s := sr.Ended()[before]
		if s.Parent().IsValid() && s.Parent().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("headers %.60q: server span's parent %v", md, s.Parent())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bags {
		if len(b) > 8<<10 {
			t.Errorf("the handler got %d bytes of baggage", len(b))
		}
	}
}

// The provider's exporter blocks for ever, or fails: with the SDK's
// batching processor (bounded queue), every call still succeeds within
// its deadline. The exporter is a stand-in (a real one cannot be made to
// block on demand).
func TestBlockedOrFailingExporterNeverHoldsACall(t *testing.T) {
	for _, c := range []struct {
		name string
		exp  *standInExporter
	}{{"blocks", &standInExporter{block: make(chan struct{})}}, {"fails", &standInExporter{}}} {
		t.Run(c.name, func(t *testing.T) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(c.exp, sdktrace.WithMaxQueueSize(64), sdktrace.WithMaxExportBatchSize(16), sdktrace.WithBatchTimeout(time.Millisecond)))
			defer func() {
				if c.exp.block != nil {
					close(c.exp.block)
				}
				_ = tp.Shutdown(context.Background())
			}()
			tg := newTracing(t, tp)
			n := guardedServer(t, "n", tg)
			cc := client(t, tg, nil, n)
			testcluster.InParallel(t, 8, 400, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := echo.Unary(ctx, cc, grpc.WaitForReady(true))
				return err
			})
			if c.exp.calls.Load() == 0 {
				t.Error("the exporter was never called")
			}
		})
	}
}

// standInExporter is a span exporter that blocks until block closes (if
// set) or else fails.
type standInExporter struct {
	block chan struct{}
	calls atomic.Int32
}

func (e *standInExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	e.calls.Add(1)
	if e.block != nil {
		select {
		case <-e.block:
		case <-ctx.Done():
		}
		return nil
	}
	return errExport
}

func (e *standInExporter) Shutdown(context.Context) error { return nil }

var errExport = &exportError{}

type exportError struct{}

func (*exportError) Error() string { return "stand-in exporter: refused" }

// A nil provider, option or propagator is an error.
func TestBadInput(t *testing.T) {
	tp, _ := newProvider(t)
	for name, f := range map[string]func() (*tracing.Tracing, error){
		"nil provider":   func() (*tracing.Tracing, error) { return rgotel.New(nil) },
		"nil option":     func() (*tracing.Tracing, error) { return rgotel.New(tp, nil) },
		"nil propagator": func() (*tracing.Tracing, error) { return rgotel.New(tp, rgotel.WithPropagator(nil)) },
		"bad tracing": func() (*tracing.Tracing, error) {
			return rgotel.New(tp, rgotel.WithTracing(tracing.WithMaxHeaderBytes(0)))
		},
	} {
		if tg, err := f(); err == nil || tg != nil {
			t.Errorf("%s: %v, %v; want an error", name, tg, err)
		}
	}
}

// The HTTP carrier on OpenTelemetry: rpcguard's RoundTripper to rpcguard's
// middleware is one trace, the server span under the client span, and the
// handler reads the caller's OTel baggage and its own span through OTel's
// API. A baggage member whose key no header can carry (non-ASCII) never
// fails the request.
func TestHTTPOnOtelIsOneTrace(t *testing.T) {
	tp, sr := newProvider(t)
	tg := newTracing(t, tp)
	type seen struct {
		tenant string
		span   trace.SpanContext
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(tg.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{baggage.FromContext(r.Context()).Member("tenant").Value(), trace.SpanFromContext(r.Context()).SpanContext()}
	})))
	defer srv.Close()
	hc := &http.Client{Transport: tg.RoundTripper(nil)}
	for _, keys := range [][]string{{"tenant"}, {"tenant", "clé"}} {
		var members []baggage.Member
		for _, k := range keys {
			m, err := baggage.NewMemberRaw(k, "José")
			if err != nil {
				t.Fatal(err)
			}
			members = append(members, m)
		}
		bag, err := baggage.New(members...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, root := tp.Tracer("app").Start(baggage.ContextWithBaggage(context.Background(), bag), "root")
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/x", nil)
		resp, err := hc.Do(req)
		root.End()
		if err != nil {
			t.Fatalf("baggage keys %q: %v", keys, err)
		}
		_ = resp.Body.Close()
		s := <-got
		if len(keys) == 1 && s.tenant != "José" {
			t.Errorf("the handler read baggage %q, want José", s.tenant)
		}
		if s.span.TraceID() != root.SpanContext().TraceID() {
			t.Errorf("baggage keys %q: the server span is in trace %v, the caller's is %v", keys, s.span.TraceID(), root.SpanContext().TraceID())
		}
	}
	testcluster.WaitFor(t, 5*time.Second, "6 spans", func() bool { return len(sr.Ended()) == 6 })
	t.Logf("\n%s", tree(sr.Ended()))
}
