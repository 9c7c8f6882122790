package retry_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
)

// BenchmarkUnary compares, in one run, a successful unary call over
// loopback without and with the retry interceptor (default policy, the call
// marked idempotent), on one node through passthrough so that only the
// interceptor differs.
func BenchmarkUnary(b *testing.B) {
	node := testcluster.Start(b, 1).Nodes[0]
	p := mustPolicy(b, retry.WithIdempotent("*"))
	for _, bc := range []struct {
		name string
		opts []grpc.DialOption
	}{
		{"bare", nil},
		{"retry", []grpc.DialOption{grpc.WithUnaryInterceptor(p.UnaryClientInterceptor())}},
	} {
		cc := testcluster.Dial(b, "passthrough:///"+node.Addr, bc.opts...)
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := echo.Unary(ctx, cc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHedgingLatency reports p50 and p99 of calls to 3 nodes, one of
// them 200 ms slow, with and without hedging after 20 ms. A third of the
// calls start on the slow node and need a hedge, more than the default
// budget's 20%, so the hedged run has a budget of 50%. Run it with
// -benchtime 2000x for the 2,000 calls the README quotes.
func BenchmarkHedgingLatency(b *testing.B) {
	for _, hedged := range []bool{false, true} {
		b.Run(fmt.Sprintf("hedged=%v", hedged), func(b *testing.B) {
			opts := []retry.Option{retry.WithIdempotent(unary)}
			if hedged {
				opts = append(opts, retry.WithHedging(20*time.Millisecond, unary), retry.WithBudget(retry.Budget{Ratio: 0.5, MinPerSecond: 10}))
			}
			c := newClient(b, 3, `{"strategy":"round_robin"}`, mustPolicy(b, opts...))
			c.cluster.Nodes[0].SetFault(echo.Delay(200 * time.Millisecond))
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					start := time.Now()
					if _, err := call(context.Background(), c); err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					lat = append(lat, time.Since(start))
					mu.Unlock()
				}
			})
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
