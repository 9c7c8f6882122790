package retry_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
)

// The default budget routes around one bad node and still stops a storm:
// the retry interceptor alone (round robin, no ejection, 3 attempts, the
// Echo service idempotent), 1,000 calls from 4 callers with a 1 s deadline.
func TestDefaultBudgetRoutesAroundABadNodeAndStopsAStorm(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []retry.Option
	}{
		{"retries", nil},
		{"hedging", []retry.Option{retry.WithHedging(50*time.Millisecond, "*")}},
	} {
		for _, tc := range []struct {
			name        string
			nodes       int
			setup       func(c *client)
			minSuccess  float64 // share of calls
			maxAttempts float64 // attempts reaching servers per call
		}{
			{"one of 3 unavailable", 3, func(c *client) {
				c.cluster.Nodes[0].SetFault(testcluster.FailWith(codes.Unavailable))
			}, 0.999, 3},
			{"5 nodes, 2 dead, 1 erroring", 5, func(c *client) {
				c.cluster.Nodes[0].Kill()
				c.cluster.Nodes[1].Kill()
				c.cluster.Nodes[2].SetFault(testcluster.FailWith(codes.Unavailable))
			}, 0.999, 3},
			{"every node unavailable", 3, func(c *client) {
				for _, n := range c.cluster.Nodes {
					n.SetFault(testcluster.FailWith(codes.Unavailable))
				}
			}, 0, 1.1},
		} {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				p := mustPolicy(t, append([]retry.Option{retry.WithIdempotent("*")}, mode.opts...)...)
				c := newClient(t, tc.nodes, `{"strategy":"round_robin"}`, p)
				tc.setup(c)
				const calls = 1000
				var ok atomic.Int64
				testcluster.InParallel(t, 4, calls/4, func() error {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					if _, err := testcluster.Unary(ctx, c.cc); err == nil {
						ok.Add(1)
					}
					return nil
				})
				success := float64(ok.Load()) / calls
				per := float64(c.totalCalls()) / calls
				t.Logf("%.1f%% succeeded, %.3f attempts reached servers per call", 100*success, per)
				if success < tc.minSuccess {
					t.Errorf("%.1f%% of calls succeeded, want at least %.1f%%", 100*success, 100*tc.minSuccess)
				}
				if per > tc.maxAttempts {
					t.Errorf("%.3f attempts reached servers per call, want at most %v", per, tc.maxAttempts)
				}
			})
		}
	}
}
