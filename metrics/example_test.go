package metrics_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/metrics"
)

// An Observer watching a breaker; mount its two handlers where you want
// them. For a gRPC client, also pass obs.Selector("SERVICE") through
// rpcguard.WithSelectorOptions, obs.RetryHooks to retry.WithHooks, and
// watch the policy and your registrars.
func ExampleObserver() {
	obs := metrics.New()
	brk, err := breaker.New(breaker.WithNamespace("example-metrics"))
	if err != nil {
		panic(err)
	}
	obs.WatchBreaker("payments", brk)
	_ = brk.Do(context.Background(), "charge", func(context.Context) error { return nil })

	mux := http.NewServeMux()
	mux.Handle("/metrics", obs.Handler())
	mux.Handle("/debug/rpcguard", obs.DebugHandler())

	for _, c := range obs.Snapshot().Circuits {
		fmt.Println(c.Client, c.Command, "open:", c.Open, "successes:", c.Successes)
	}
	// Output: payments charge open: false successes: 1
}
