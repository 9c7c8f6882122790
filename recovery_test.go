package rpcguard_test

import (
	"context"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
)

// The recovery measurement of issue 23 (opt-in: RPCGUARD_MEASURE_RECOVERY=1,
// about 30 s): 3 nodes, 4 paced callers through NewClient's defaults; node-2
// answers 200 ms late for 3 s, then is healthy; its share of the attempts
// in each 5 s window from 5 s after it recovered must be at least 25% (a
// fair share is 33%), also while other processes keep the cores busy (the
// latency a loaded client measures carries its own scheduling delay).
func TestRecoveredNodeShareMeasured(t *testing.T) {
	if os.Getenv("RPCGUARD_MEASURE_RECOVERY") == "" {
		t.Skip("a 30 s measurement: RPCGUARD_MEASURE_RECOVERY=1 to run it")
	}
	c := testcluster.Start(t, 3)
	cc, err := rpcguard.NewClient("recovery", c.Source(t), rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	shares := testcluster.RecoveryShares(t, 2, c.Calls, func(slow bool) {
		if slow {
			c.Nodes[2].SetFault(echo.Delay(200 * time.Millisecond))
		} else {
			c.Nodes[2].SetFault(nil)
		}
	}, func(ctx context.Context) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, _ = echo.Unary(cctx, cc)
	})
	t.Logf("the recovered node's share, 5-10 s, 10-15 s, 15-20 s, 20-25 s after it recovered: %.2f", shares)
	for _, s := range shares {
		if s < 0.25 {
			t.Errorf("a window with %.2f of the attempts on the recovered node, want at least 0.25", s)
		}
	}
}
