package gomicro_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/rpcguard/rpcguard/faultinject"
	"github.com/rpcguard/rpcguard/internal/testcluster"
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
	calls := func() []int64 {
		out := make([]int64, len(f.servers))
		for i, s := range f.servers {
			out[i] = s.calls.Load()
		}
		return out
	}
	shares := testcluster.RecoveryShares(t, 2, calls, func(slow bool) {
		var rules []faultinject.Rule
		if slow {
			rules = append(rules, faultinject.Rule{Name: "slow", Node: "greeter-greeter-2", Rate: 1, Latency: faultinject.Fixed(200 * time.Millisecond)})
		}
		if err := inj.SetRules(rules...); err != nil {
			t.Error(err)
		}
	}, func(context.Context) { _, _ = f.call("x") })
	t.Logf("the recovered node's share, 5-10 s, 10-15 s, 15-20 s, 20-25 s after it recovered: %.2f", shares)
	for _, s := range shares {
		if s < 0.25 {
			t.Errorf("a window with %.2f of the attempts on the recovered node, want at least 0.25", s)
		}
	}
}
