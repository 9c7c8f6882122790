package echo

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/internal/ctxwait"
)

// FailWith answers every call with code.
func FailWith(code codes.Code) Fault {
	return func(context.Context, string) error { return status.Error(code, "testcluster: injected "+code.String()) }
}

// FailEvery answers every n-th call (the 1st, the (n+1)-th, ...) with code.
func FailEvery(n int64, code codes.Code) Fault {
	var calls atomic.Int64
	fail := FailWith(code)
	return func(ctx context.Context, m string) error {
		if (calls.Add(1)-1)%n == 0 {
			return fail(ctx, m)
		}
		return nil
	}
}

// Delay makes every call take d longer (or end with ctx).
func Delay(d time.Duration) Fault { return DelayBetween(d, d) }

// DelayBetween makes every call take a random time in [lo, hi] longer (or
// end with ctx).
func DelayBetween(lo, hi time.Duration) Fault {
	return func(ctx context.Context, _ string) error {
		d := lo
		if hi > lo {
			d += time.Duration(rand.Int64N(int64(hi - lo + 1)))
		}
		if err := ctxwait.Sleep(ctx, d); err != nil {
			return status.FromContextError(err).Err()
		}
		return nil
	}
}

// Hang accepts every call and never answers: the call ends only with its
// context (a black-hole node).
func Hang() Fault {
	return func(ctx context.Context, _ string) error {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
}

// Capacity makes a node serve at most n calls at once, each taking d; it
// refuses more at once with ResourceExhausted, as a server with admission
// control does.
func Capacity(n int64, d time.Duration) Fault {
	var in atomic.Int64
	serve := Delay(d)
	return func(ctx context.Context, m string) error {
		if in.Add(1) > n {
			in.Add(-1)
			return status.Error(codes.ResourceExhausted, "testcluster: at capacity")
		}
		defer in.Add(-1)
		return serve(ctx, m)
	}
}
