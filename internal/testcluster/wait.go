package testcluster

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rpcguard/rpcguard/breaker"
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

// HystrixGoroutines are goleak options that ignore hystrix-go's goroutines
// (breaker.HystrixGoroutines).
func HystrixGoroutines() []goleak.Option {
	var opts []goleak.Option
	for _, f := range breaker.HystrixGoroutines() {
		opts = append(opts, goleak.IgnoreAnyFunction(f))
	}
	return opts
}
