package testcluster

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// WaitFor polls cond until it holds, and fails t if d passes first: tests
// wait on conditions, never on sleeps.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// InParallel runs call n times in each of g goroutines and waits; the first
// error of a goroutine fails t and ends that goroutine.
func InParallel(t testing.TB, g, n int, call func() error) {
	t.Helper()
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if err := call(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// HystrixGoroutines are goleak options that ignore hystrix-go's goroutines:
// it starts two per circuit that run for the life of the process (see
// package breaker), and one per metrics collector per event.
func HystrixGoroutines() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/afex/hystrix-go/hystrix.(*metricExchange).Monitor"),
		goleak.IgnoreAnyFunction("github.com/afex/hystrix-go/hystrix.(*poolMetrics).Monitor"),
		goleak.IgnoreAnyFunction("github.com/afex/hystrix-go/hystrix.(*metricExchange).IncrementMetrics"),
	}
}
