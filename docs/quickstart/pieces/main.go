// The gRPC stack piece by piece: what rpcguard.NewClient assembles, for a
// client that wants to hold each part (servers too: tracing and a breaker).
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	jaegerclient "github.com/uber/jaeger-client-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
	"github.com/rpcguard/rpcguard/tracing/jaeger"
)

func main() {
	// Tracing: a Jaeger tracer (jaeger.FromEnv() reads JAEGER_*; here the
	// spans stay in memory), closed on exit to flush the spans.
	spans := jaegerclient.NewInMemoryReporter()
	tracer, closer, err := jaeger.New("greeter-client", jaeger.WithInMemoryReporter(spans))
	if err != nil {
		log.Fatal(err)
	}
	defer closer.Close()
	tg, err := tracing.New(tracing.WithTracer(tracer))
	if err != nil {
		log.Fatal(err)
	}
	brk, err := breaker.New(breaker.WithNamespace("greeter-client")) // one circuit per method
	if err != nil {
		log.Fatal(err)
	}

	// Servers: a server span and a server-side breaker per method.
	var nodes []selector.Node
	for _, id := range []string{"a", "b", "c"} {
		s, err := echo.Start(id, grpc.ChainUnaryInterceptor(tg.UnaryServerInterceptor(), brk.UnaryServerInterceptor()))
		if err != nil {
			log.Fatal(err)
		}
		defer s.Kill()
		nodes = append(nodes, selector.Node{ID: id, Addr: s.Addr})
	}
	src, err := selector.NewStatic(nodes...) // or a registry from package health
	if err != nil {
		log.Fatal(err)
	}
	rb, err := selector.NewResolverBuilder(src) // nodes from a Source
	if err != nil {
		log.Fatal(err)
	}
	policy, err := retry.New(
		retry.WithMaxAttempts(3),
		retry.WithPerAttemptTimeout(300*time.Millisecond),
		retry.WithIdempotent("/rpcguard.test.Echo/*"), // may be retried after reaching a server
	)
	if err != nil {
		log.Fatal(err)
	}
	cc, err := grpc.NewClient("rpcguard:///greeter",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(rb),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"rpcguard_selector": {
			"strategy": "p2c",
			"ejection": {"consecutiveFailures": 5, "baseTime": "30s", "maxTime": "300s", "maxPercent": 50}
		}}]}`),
		// Call span, breaker (one event per call), retries, attempt spans.
		grpc.WithChainUnaryInterceptor(tg.UnaryClientInterceptor(), brk.UnaryClientInterceptor(),
			policy.UnaryClientInterceptor(), tg.AttemptUnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(tg.StreamClientInterceptor(), brk.StreamClientInterceptor(),
			policy.StreamClientInterceptor(), tg.AttemptStreamClientInterceptor()),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := echo.Unary(ctx, cc, grpc.WaitForReady(true))
	fmt.Println("answered by", id, err, "-", len(spans.GetSpans()), "spans") // call, attempt, server
}
