package otel_test

import (
	"context"
	"fmt"
	"log"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing/otel"
)

// An rpcguard client and server on an OpenTelemetry provider: one trace of
// a call span, an attempt span and the server span.
func ExampleNew() {
	sr := tracetest.NewSpanRecorder() // in production: sdktrace.WithBatcher(an OTLP exporter)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())
	tg, err := otel.New(tp)
	if err != nil {
		log.Fatal(err)
	}

	server, err := echo.Start("a", grpc.ChainUnaryInterceptor(tg.UnaryServerInterceptor()))
	if err != nil {
		log.Fatal(err)
	}
	defer server.Kill()
	src, err := selector.NewStatic(selector.Node{ID: "a", Addr: server.Addr})
	if err != nil {
		log.Fatal(err)
	}
	cc, err := rpcguard.NewClient("greeter", src, rpcguard.WithTracing(tg),
		rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); err != nil {
		log.Fatal(err)
	}

	for _, s := range sr.Ended() { // in the order they ended
		fmt.Println(s.Name(), s.SpanKind())
	}
	// Output:
	// /rpcguard.test.Echo/Unary server
	// /rpcguard.test.Echo/Unary attempt client
	// /rpcguard.test.Echo/Unary client
}
