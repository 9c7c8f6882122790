package rpcguard_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

// BenchmarkStack compares, in one run, a healthy unary call over loopback
// to 3 nodes through bare gRPC (round_robin on the same resolver) and
// through the whole rpcguard stack (no-op tracer: the global default).
func BenchmarkStack(b *testing.B) {
	cluster := testcluster.Start(b, 3)
	var nodes []selector.Node
	for _, n := range cluster.Nodes {
		nodes = append(nodes, selector.Node{ID: n.ID, Addr: n.Addr})
	}
	src, err := selector.NewStatic(nodes...)
	if err != nil {
		b.Fatal(err)
	}
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	bare, err := grpc.NewClient("rpcguard:///echo", creds, testcluster.Resolver(b, src),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		b.Fatal(err)
	}
	defer bare.Close()
	policy, err := retry.New(retry.WithIdempotent("*"))
	if err != nil {
		b.Fatal(err)
	}
	brk, err := breaker.New(breaker.WithNamespace("bench-stack"))
	if err != nil {
		b.Fatal(err)
	}
	stack, err := rpcguard.NewClient("echo", src, rpcguard.WithRetry(policy), rpcguard.WithBreaker(brk), rpcguard.WithDialOptions(creds))
	if err != nil {
		b.Fatal(err)
	}
	defer stack.Close()
	for _, c := range []struct {
		name string
		cc   *grpc.ClientConn
	}{{"bare", bare}, {"rpcguard", stack}} {
		for range 30 { // connect to every node first
			if _, err := echo.Unary(context.Background(), c.cc, grpc.WaitForReady(true)); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := echo.Unary(ctx, c.cc); err != nil {
					b.Fatal(fmt.Errorf("%s: %w", c.name, err))
				}
			}
		})
	}
}
