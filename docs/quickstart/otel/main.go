// The OpenTelemetry quick start: rpcguard's spans go to an OpenTelemetry
// TracerProvider (OTLP to a collector or Jaeger v2 when
// OTEL_EXPORTER_OTLP_ENDPOINT names one, in memory otherwise), and servers
// instrumented with otelgrpc join the same traces over W3C traceparent.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	otelapi "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing/otel"
)

func main() {
	ctx := context.Background()
	var exporter sdktrace.SpanExporter = tracetest.NewInMemoryExporter()
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" { // e.g. http://127.0.0.1:4317
		otlp, err := otlptracegrpc.New(ctx)
		if err != nil {
			log.Fatal(err)
		}
		exporter = otlp
	}
	// A batching processor: tracing never slows or fails a call.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter))
	defer tp.Shutdown(ctx) // flushes the spans
	// W3C trace context and baggage for OpenTelemetry's own instrumentation
	// (otelgrpc reads the global propagator, which by default reads nothing).
	otelapi.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	reg, err := health.NewMemory()
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	for _, id := range []string{"a", "b", "c"} {
		// Servers on OpenTelemetry's own instrumentation (otelgrpc).
		s, err := echo.Start(id, grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp))))
		if err != nil {
			log.Fatal(err)
		}
		defer s.Kill()
		if id == "b" {
			s.SetFault(echo.FailWith(codes.Unavailable)) // a bad node
		}
		if err := reg.Register(ctx, "greeter", selector.Node{ID: id, Addr: s.Addr}, time.Minute); err != nil {
			log.Fatal(err)
		}
	}

	// One call: a call span, an attempt span per try, the server's span
	// under the attempt that reached it.
	tg, err := otel.New(tp) // W3C traceparent, tracestate and baggage
	if err != nil {
		log.Fatal(err)
	}
	policy, err := retry.New(retry.WithIdempotent("/rpcguard.test.Echo/*"))
	if err != nil {
		log.Fatal(err)
	}
	cc, err := rpcguard.NewClient("greeter", reg,
		rpcguard.WithTracing(tg),
		rpcguard.WithRetry(policy),
		rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()

	failed := 0
	for range 20 {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		if _, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); err != nil {
			failed++
		}
		cancel()
	}
	fmt.Println("failed calls:", failed) // failed calls: 0
	if err := tp.ForceFlush(ctx); err != nil {
		log.Fatal(err)
	}
	if mem, ok := exporter.(*tracetest.InMemoryExporter); ok {
		traces := map[string]int{}
		for _, s := range mem.GetSpans() {
			traces[s.SpanContext.TraceID().String()]++
		}
		fmt.Println("traces:", len(traces)) // traces: 20 (3 spans each, 5 when the bad node was tried first)
	}
}
