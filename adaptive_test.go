package rpcguard_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
)

// An overload: 3 nodes that each serve at most 8 calls at once (20 ms each)
// and refuse more at once with ResourceExhausted, and 32 callers, wanting
// more than the fleet's ~1,200 calls a second. NewClient (the Echo service
// idempotent, as in the side-by-side runs) serves it: at least 95% of calls
// succeed, at most 1.2 attempts per call reach the servers, and the circuit
// stays closed. (The p99 is logged: timings are not asserted.)
func TestNewClientServesAnOverload(t *testing.T) {
	c := testcluster.Start(t, 3)
	for _, n := range c.Nodes {
		n.SetFault(echo.Capacity(8, 20*time.Millisecond))
	}
	src := c.Source(t)
	policy, err := retry.New(retry.WithIdempotent("*"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := rpcguard.NewClient("overload", src, rpcguard.WithRetry(policy),
		rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	cc.Connect()
	const callers, each = 32, 40
	var ok, open atomic.Int64
	var mu sync.Mutex
	var took []time.Duration
	var reasons sync.Map
	testcluster.InParallel(t, callers, each, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := echo.Unary(ctx, cc, grpc.WaitForReady(true))
		mu.Lock()
		took = append(took, time.Since(start))
		mu.Unlock()
		if err != nil {
			v, _ := reasons.LoadOrStore(err.Error()[:min(len(err.Error()), 90)], new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
		}
		switch {
		case err == nil:
			ok.Add(1)
		case errors.Is(err, breaker.ErrOpen):
			open.Add(1)
		}
		return nil
	})
	const calls = callers * each
	var attempts int64
	for _, n := range c.Calls() {
		attempts += n
	}
	slices.Sort(took)
	t.Logf("%.1f%% succeeded, p99 %v, %.3f attempts per call, %d refused by an open circuit",
		100*float64(ok.Load())/calls, took[len(took)*99/100].Round(time.Millisecond), float64(attempts)/calls, open.Load())
	if float64(ok.Load()) < 0.95*calls {
		reasons.Range(func(k, v any) bool { t.Log("failed: ", k, v.(*atomic.Int64).Load()); return true })
		t.Errorf("%d of %d calls succeeded, want at least 95%%", ok.Load(), calls)
	}
	if float64(attempts) > 1.2*calls {
		t.Errorf("%d attempts reached the servers for %d calls, want at most 1.2 per call", attempts, calls)
	}
	if open.Load() != 0 {
		t.Errorf("the circuit opened: %d calls refused", open.Load())
	}
}
