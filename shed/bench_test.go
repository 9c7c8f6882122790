package shed_test

import (
	"context"
	"testing"
	"time"

	"github.com/rpcguard/rpcguard/shed"
)

// BenchmarkAcquireRelease is the Limiter's cost per admitted call: with an
// arrival stamp made per call as gRPC's tap does (its context is the one
// allocation), and without (the scheduler's estimate).
func BenchmarkAcquireRelease(b *testing.B) {
	l, err := shed.New()
	if err != nil {
		b.Fatal(err)
	}
	for name, stamp := range map[string]bool{"stamped": true, "estimated": false} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				if stamp {
					ctx = shed.Arrived(context.Background(), time.Now())
				}
				t, err := l.Acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				t.Release()
			}
		})
	}
}
