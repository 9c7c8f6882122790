package breaker_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"

	"github.com/rpcguard/rpcguard/breaker"
)

var errBench = errors.New("down")

// BenchmarkBreaker compares, in one run, a Breaker and hystrix.Do around
// the same function, on a closed circuit (success) and an open one.
func BenchmarkBreaker(b *testing.B) {
	ctx := context.Background()
	ok := func(context.Context) error { return nil }
	settings := breaker.Settings{Timeout: time.Second, MaxConcurrent: 1000, VolumeThreshold: 1, ErrorPercent: 1, SleepWindow: time.Hour}
	br := newBreaker(b, nil, breaker.WithSettings(settings))
	// hystrix.Do returns its concurrency ticket on another goroutine, so a
	// tight loop needs a large pool not to be refused.
	hystrix.ConfigureCommand("bench-hystrix-success", hystrix.CommandConfig{Timeout: 1000, MaxConcurrentRequests: 1 << 20})
	hystrix.ConfigureCommand("bench-hystrix-open", hystrix.CommandConfig{Timeout: 1000, MaxConcurrentRequests: 1000, RequestVolumeThreshold: 1, ErrorPercentThreshold: 1, SleepWindow: 3600000})

	b.Run("success/rpcguard", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := br.Do(ctx, "bench-success", ok); err != nil {
				b.Fatal(err)
			}
		}
	})
	def := newBreaker(b, nil) // the defaults: no timeout, no concurrency limit
	b.Run("success/rpcguard-defaults", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := def.Do(ctx, "bench-success", ok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("success/hystrix.Do", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := hystrix.Do("bench-hystrix-success", func() error { return nil }, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Open both circuits: fail until the circuit says it is open.
	for !br.IsOpen("bench-open") {
		_ = br.Do(ctx, "bench-open", func(context.Context) error { return errBench })
		runtime.Gosched() // let hystrix's metrics goroutine count the failure
	}
	for {
		cb, _, _ := hystrix.GetCircuit("bench-hystrix-open")
		if cb.IsOpen() {
			break
		}
		_ = hystrix.Do("bench-hystrix-open", func() error { return errBench }, nil)
		runtime.Gosched()
	}
	b.Run("open/rpcguard", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := br.Do(ctx, "bench-open", ok); !errors.Is(err, breaker.ErrOpen) {
				b.Fatal(err)
			}
		}
	})
	b.Run("open/hystrix.Do", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := hystrix.Do("bench-hystrix-open", func() error { return nil }, nil); err == nil {
				b.Fatal("open circuit let a call through")
			}
		}
	})
}
