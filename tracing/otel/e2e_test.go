package otel_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/codes"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
)

// TestOTLPEndToEnd sends a retried call's spans over OTLP/gRPC to a real
// collector or Jaeger and, when RPCGUARD_JAEGER_QUERY names Jaeger's query
// API, reads the trace back. It runs only when RPCGUARD_OTLP_ENDPOINT names
// the collector's OTLP/gRPC port (see the README):
//
//	RPCGUARD_OTLP_ENDPOINT=127.0.0.1:4317
//	RPCGUARD_JAEGER_QUERY=http://127.0.0.1:16686
func TestOTLPEndToEnd(t *testing.T) {
	endpoint, query := os.Getenv("RPCGUARD_OTLP_ENDPOINT"), os.Getenv("RPCGUARD_JAEGER_QUERY")
	if endpoint == "" {
		t.Skip("set RPCGUARD_OTLP_ENDPOINT (and RPCGUARD_JAEGER_QUERY) to run against a real collector")
	}
	ctx := context.Background()
	service := fmt.Sprintf("rpcguard-otlp-e2e-%d", time.Now().UnixNano())
	res := resource.NewSchemaless(attribute.String("service.name", service))
	provider := func() *sdktrace.TracerProvider { // an exporter each: a provider's Shutdown shuts its exporter
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	}
	tp, stp := provider(), provider()
	bad, good := otelServer(t, "bad", stp, w3c), otelServer(t, "good", stp, w3c)
	bad.SetFault(echo.FailWith(codes.Unavailable))
	cc := client(t, newTracing(t, tp), idempotent(t), bad, good)
	for range 4 { // round robin: at least one call tries the bad node first
		if _, err := echo.Unary(ctx, cc); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*sdktrace.TracerProvider{tp, stp} {
		if err := p.Shutdown(ctx); err != nil { // flushes: an export error fails here
			t.Fatal(err)
		}
	}
	if query == "" {
		return
	}
	testcluster.WaitFor(t, 30*time.Second, "a retried call's trace in Jaeger's query API", func() bool {
		for _, ops := range testcluster.JaegerTraces(query, service) {
			if ops[echo.UnaryMethod] == 1 && ops[echo.UnaryMethod+" attempt"] == 2 && ops["rpcguard.test.Echo/Unary"] == 2 {
				return true
			}
		}
		return false
	})
}
