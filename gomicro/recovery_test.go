package gomicro_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rpcguard/rpcguard/faultinject"
)

// The recovery measurement of issue 23 on go-micro (opt-in:
// RPCGUARD_MEASURE_RECOVERY=1, about 30 s), as the gRPC one at the root: 3
// nodes, 4 paced callers through gomicro's client wrapper and selector
// (power of two choices, ejection); greeter-2 answers 200 ms late for 3 s,
// then is healthy; its share of the attempts in each 5 s window from 5 s
// after it recovered must be at least 25%.
func TestRecoveredNodeShareMeasured(t *testing.T) {
	if os.Getenv("RPCGUARD_MEASURE_RECOVERY") == "" {
		t.Skip("a 30 s measurement: RPCGUARD_MEASURE_RECOVERY=1 to run it")
	}
	inj := newInjector(t)
	f := faultyFleet(t, 3, inj, nil)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				_, _ = f.call("x")
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	time.Sleep(2 * time.Second) // warm: the measurement's own pacing, not an event to wait for
	if err := inj.SetRules(faultinject.Rule{Name: "slow", Node: "greeter-greeter-2", Rate: 1, Latency: faultinject.Fixed(200 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := inj.SetRules(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	var shares []float64
	for range 4 {
		var before [3]int64
		for i, s := range f.servers {
			before[i] = s.calls.Load()
		}
		time.Sleep(5 * time.Second)
		total := int64(0)
		for i, s := range f.servers {
			total += s.calls.Load() - before[i]
		}
		shares = append(shares, float64(f.servers[2].calls.Load()-before[2])/float64(total))
	}
	t.Logf("the recovered node's share, 5-10 s, 10-15 s, 15-20 s, 20-25 s after it recovered: %.2f", shares)
	for _, s := range shares {
		if s < 0.25 {
			t.Errorf("a window with %.2f of the attempts on the recovered node, want at least 0.25", s)
		}
	}
}
