package otel_test

import (
	"context"
	"testing"

	"github.com/opentracing/opentracing-go"
	jaegerclient "github.com/uber/jaeger-client-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard/tracing"
	rgotel "github.com/rpcguard/rpcguard/tracing/otel"
)

// BenchmarkTracedCall is the cost of a traced gRPC call (the call and
// attempt interceptors around an invoker that returns at once: a call span,
// an attempt span, the headers injected) on each back-end: "none" is
// OpenTracing's no-op tracer, "jaeger" a sampled jaeger-client-go tracer
// with a null reporter, "otel" the OpenTelemetry SDK (always sampled, a
// batching processor and an exporter that drops) through the bridge.
func BenchmarkTracedCall(b *testing.B) {
	cc, err := grpc.NewClient("passthrough:///127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	jt, closer := jaegerclient.NewTracer("bench", jaegerclient.NewConstSampler(true), jaegerclient.NewNullReporter())
	defer closer.Close()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	none, err := tracing.New(tracing.WithTracer(opentracing.NoopTracer{}))
	if err != nil {
		b.Fatal(err)
	}
	jaeger, err := tracing.New(tracing.WithTracer(jt))
	if err != nil {
		b.Fatal(err)
	}
	otel, err := rgotel.New(tp)
	if err != nil {
		b.Fatal(err)
	}
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	for _, bc := range []struct {
		name string
		tg   *tracing.Tracing
	}{{"none", none}, {"jaeger", jaeger}, {"otel", otel}} {
		call, attempt := bc.tg.UnaryClientInterceptor(), bc.tg.AttemptUnaryClientInterceptor()
		chained := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			return attempt(ctx, method, req, reply, cc, invoker, opts...)
		}
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := call(ctx, "/pkg.Service/Method", nil, nil, cc, chained); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
