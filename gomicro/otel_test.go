package gomicro_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rpcguard/rpcguard/internal/testcluster"
	rgotel "github.com/rpcguard/rpcguard/tracing/otel"
)

// (issue 26 c) client → front → greeter, every client and handler wrapper
// on OpenTelemetry (W3C headers through go-micro's metadata, which
// capitalises them): each of 20 calls is one trace of six spans, each
// server span under the attempt that reached it, each call span under the
// server span of the handler that made it. On mucp and the grpc plugins.
func TestOtelTraceAcrossTwoHops(t *testing.T) {
	for _, k := range []kind{mucp, grpcKind} {
		t.Run(k.name, func(t *testing.T) {
			sr := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			tg, err := rgotel.New(tp)
			if err != nil {
				t.Fatal(err)
			}
			top := relayChain(t, k, newMicroRegistry(), tg)
			for i := range 20 {
				before := len(sr.Ended())
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				var rsp Rsp
				err := top.Call(ctx, top.NewRequest("front", "Relay.Hello", &Req{Name: "x"}), &rsp)
				cancel()
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				testcluster.WaitFor(t, 5*time.Second, "6 spans", func() bool { return len(sr.Ended())-before >= 6 })
				byName := map[string]sdktrace.ReadOnlySpan{}
				for _, s := range sr.Ended()[before:] {
					byName[s.Name()] = s
				}
				chain := []struct {
					name string
					kind trace.SpanKind
				}{
					{"front Relay.Hello", trace.SpanKindClient}, {"front Relay.Hello attempt", trace.SpanKindClient}, {"Relay.Hello", trace.SpanKindServer},
					{"greeter Greeter.Hello", trace.SpanKindClient}, {"greeter Greeter.Hello attempt", trace.SpanKindClient}, {"Greeter.Hello", trace.SpanKindServer},
				}
				var parent sdktrace.ReadOnlySpan
				for _, c := range chain {
					s := byName[c.name]
					switch {
					case s == nil:
						t.Fatalf("call %d: no span %q among %d", i, c.name, len(byName))
					case s.SpanKind() != c.kind:
						t.Fatalf("call %d: span %q is %v, want %v", i, c.name, s.SpanKind(), c.kind)
					case parent != nil && (s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanContext().TraceID() != parent.SpanContext().TraceID()):
						t.Fatalf("call %d: span %q's parent is %v, want %q (%v)", i, c.name, s.Parent().SpanID(), parent.Name(), parent.SpanContext().SpanID())
					}
					parent = s
				}
			}
		})
	}
}
