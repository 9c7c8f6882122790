package selector_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/rpcguard/rpcguard/echo"
)

// share runs calls with 4 callers and returns the share of them node i
// served.
func (h *harness) share(t *testing.T, calls, i int) float64 {
	t.Helper()
	before := h.cluster.Calls()[i]
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls / 4 {
				_, _ = h.call(context.Background())
			}
		}()
	}
	wg.Wait()
	return float64(h.cluster.Calls()[i]-before) / float64(calls/4*4)
}

// Power of two choices shuns a slow node, and wins it back once it
// recovers: what it learned of the node's latency goes stale, one pick
// probes it, and the fresh sample replaces the stale one.
func TestGRPCPowerOfTwoWinsBackARecoveredNode(t *testing.T) {
	h := newHarness(t, 3, `{"strategy":"p2c"}`, "")
	slow := h.cluster.Nodes[2]
	slow.SetFault(echo.Delay(200 * time.Millisecond))
	if s := h.share(t, 1200, 2); s > 0.01 {
		// At most 1% of calls on the 200 ms node: p99 stays fast.
		t.Fatalf("the slow node served %.1f%% of the calls, want at most 1%%", 100*s)
	}
	slow.SetFault(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last float64
	for last < 0.25 {
		if ctx.Err() != nil {
			t.Fatalf("10 s after it recovered the node's share is %.1f%%, want at least 25%%", 100*last)
		}
		last = h.share(t, 200, 2)
	}
}

// The same for a node back from ejection: its failures made it look slow,
// and that goes stale too.
func TestGRPCPowerOfTwoWinsBackANodeBackFromEjection(t *testing.T) {
	h := newHarness(t, 3, `{"strategy":"p2c","ejection":{"consecutiveFailures":3,"baseTime":"300ms"}}`, "")
	bad := h.cluster.Nodes[2]
	bad.SetFault(echo.FailWith(codes.Unavailable))
	for h.ejects.Load() == 0 {
		_, _ = h.call(context.Background())
	}
	bad.SetFault(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for h.returns.Load() == 0 { // the ejection (300 ms) ends at a pick
		if ctx.Err() != nil {
			t.Fatal("the node never came back from ejection")
		}
		_, _ = h.call(context.Background())
	}
	// Within 10 s of its return.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last float64
	for last < 0.25 {
		if ctx.Err() != nil {
			t.Fatalf("10 s after its return the node's share is %.1f%%, want at least 25%%", 100*last)
		}
		last = h.share(t, 200, 2)
	}
}
