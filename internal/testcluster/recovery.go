package testcluster

import (
	"context"
	"sync"
	"testing"
	"time"
)

// RecoveryShares is the recovery measurement of issue 23, for any
// transport: 4 callers call every 5 ms (call), slow makes node i slow
// (true) or healthy (false) again; after 2 s of warm-up node i is slow for
// 3 s, and from 5 s after it recovered, the share of the attempts it got
// (calls: every node's attempts so far) in each of four 5 s windows is
// returned. It takes about 30 s.
func RecoveryShares(t testing.TB, i int, calls func() []int64, slow func(bool), call func(ctx context.Context)) []float64 {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(5 * time.Millisecond) // paced: 200 calls a second each
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				call(ctx)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	// The measurement's own pacing, not events to wait for.
	time.Sleep(2 * time.Second)
	slow(true)
	time.Sleep(3 * time.Second)
	slow(false)
	time.Sleep(5 * time.Second)
	var shares []float64
	for range 4 {
		before := calls()
		time.Sleep(5 * time.Second)
		after := calls()
		total := int64(0)
		for k := range after {
			total += after[k] - before[k]
		}
		shares = append(shares, float64(after[i]-before[i])/float64(total))
	}
	return shares
}
