package tracing_test

import (
	"context"
	"fmt"
	"log"

	jaegerclient "github.com/uber/jaeger-client-go"
	"google.golang.org/grpc"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/tracing"
	"github.com/rpcguard/rpcguard/tracing/jaeger"
)

// A Jaeger tracer and the client and server interceptors. In a program,
// replace the in-memory reporter with jaeger.FromEnv() or WithAgent /
// WithCollector, and close the tracer on exit to flush its spans.
func Example_jaeger() {
	spans := jaegerclient.NewInMemoryReporter()
	tracer, closer, err := jaeger.New("greeter", jaeger.WithInMemoryReporter(spans))
	if err != nil {
		log.Fatal(err)
	}
	defer closer.Close()
	tg, err := tracing.New(tracing.WithTracer(tracer))
	if err != nil {
		log.Fatal(err)
	}

	server, err := echo.Start("a", grpc.ChainUnaryInterceptor(tg.UnaryServerInterceptor()))
	if err != nil {
		log.Fatal(err)
	}
	defer server.Kill()
	cc, err := grpc.NewClient("passthrough:///"+server.Addr,
		grpc.WithTransportCredentials(insecureCreds()),
		grpc.WithChainUnaryInterceptor(tg.UnaryClientInterceptor(), tg.AttemptUnaryClientInterceptor()))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	if _, err := echo.Unary(context.Background(), cc); err != nil {
		log.Fatal(err)
	}
	for _, s := range spans.GetSpans() {
		js := s.(*jaegerclient.Span)
		fmt.Println(js.OperationName(), js.Tags()["span.kind"])
	}
	// Output:
	// /rpcguard.test.Echo/Unary server
	// /rpcguard.test.Echo/Unary attempt client
	// /rpcguard.test.Echo/Unary client
}
