package selector_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/selector"
)

// BenchmarkPick measures one pick and its Done, with and without a per-call
// record, for each strategy over 3 and 100 nodes.
func BenchmarkPick(b *testing.B) {
	for _, st := range []selector.Strategy{selector.Random, selector.RoundRobin, selector.PowerOfTwo} {
		for _, n := range []int{3, 100} {
			s := newSelector(b, nodes(n), selector.WithStrategy(st), selector.WithEjection(selector.DefaultEjection()))
			b.Run(fmt.Sprintf("%s/nodes=%d", st, n), func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					p, err := s.Pick(ctx)
					if err != nil {
						b.Fatal(err)
					}
					p.Done(nil, true)
				}
			})
			b.Run(fmt.Sprintf("%s/nodes=%d/new-record", st, n), func(b *testing.B) {
				// A call of one attempt with its own record (NewCall included).
				b.ReportAllocs()
				for b.Loop() {
					p, err := s.Pick(selector.NewRecord(context.Background()))
					if err != nil {
						b.Fatal(err)
					}
					p.Done(nil, true)
				}
			})
		}
	}
}

// BenchmarkPickParallel is BenchmarkPick under contention from every core.
func BenchmarkPickParallel(b *testing.B) {
	for _, st := range []selector.Strategy{selector.Random, selector.RoundRobin, selector.PowerOfTwo} {
		s := newSelector(b, nodes(3), selector.WithStrategy(st))
		b.Run(string(st), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					p, err := s.Pick(ctx)
					if err != nil {
						b.Fatal(err)
					}
					p.Done(nil, true)
				}
			})
		})
	}
}

// BenchmarkGRPCUnary compares a unary call over loopback through gRPC's
// round_robin and through the rpcguard selector (with a per-call record from
// its interceptor), in one run.
func BenchmarkGRPCUnary(b *testing.B) {
	cluster := testcluster.Start(b, 3)
	src, err := selector.NewStatic(toNodes(cluster.Nodes)...)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		lb   string
		opts []grpc.DialOption
	}{
		{"grpc_round_robin", `"round_robin":{}`, nil},
		{"rpcguard_selector", `"rpcguard_selector":{"ejection":{}}`, []grpc.DialOption{grpc.WithUnaryInterceptor(selector.UnaryClientInterceptor())}},
	} {
		cc := testcluster.Dial(b, "rpcguard:///echo", append([]grpc.DialOption{
			testcluster.Resolver(b, src),
			grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%s}]}`, bc.lb)),
		}, bc.opts...)...)
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
