package tracing_test

import (
	"context"
	"testing"

	"github.com/opentracing/opentracing-go"
	"github.com/uber/jaeger-client-go"
	"google.golang.org/grpc"

	"github.com/rpcguard/rpcguard/tracing"
)

// BenchmarkClientOverhead measures the call and attempt interceptors around
// an invoker that returns at once: the per-call cost of tracing, without
// the network. "noop" is opentracing's no-op tracer; "jaeger" a sampled
// jaeger-client-go tracer with a null reporter.
func BenchmarkClientOverhead(b *testing.B) {
	cc, err := grpc.NewClient("passthrough:///127.0.0.1:1", grpc.WithTransportCredentials(insecureCreds()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	jt, closer := jaeger.NewTracer("bench", jaeger.NewConstSampler(true), jaeger.NewNullReporter())
	defer closer.Close()
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	for _, bc := range []struct {
		name   string
		tracer opentracing.Tracer
	}{{"noop", opentracing.NoopTracer{}}, {"jaeger", jt}} {
		tg, err := tracing.New(tracing.WithTracer(bc.tracer))
		if err != nil {
			b.Fatal(err)
		}
		call, attempt := tg.UnaryClientInterceptor(), tg.AttemptUnaryClientInterceptor()
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
