package stack

import (
	"context"
	"fmt"
	"sync"

	"github.com/rpcguard/rpcguard/retry"
)

// Begin opens a long-lived call (a stream) at the call level: the call
// span, then the breaker's admission (refused at once while the circuit is
// open; a stream has no Timeout: it may rightly live long), then open, once,
// with the call's context: a transport whose streams have a retry adapter
// of their own (gRPC's) runs its attempts inside it. end finishes the call
// with the stream's outcome (the breaker's slot, the event, the span); it
// may be called more than once (the first call counts), from any goroutine.
// If open fails or panics, the call ends with it (the panic goes on).
func Begin[T any](ctx context.Context, s *Stack, op Op, open func(ctx context.Context) (T, error)) (_ T, end func(error), _ error) {
	var zero T
	if s == nil || open == nil {
		return zero, nil, fmt.Errorf("stack: Begin(%q): nil Stack or open function", op.Name)
	}
	ctx, finish := s.tg.StartCall(ctx, op.Name, op.Span)
	adm, err := s.brk.Allow(ctx, op.Name)
	if err != nil {
		finish(err)
		return zero, nil, err
	}
	var once sync.Once
	end = func(err error) { once.Do(func() { finish(adm.Done(err)) }) }
	returned := false
	defer func() {
		if !returned {
			end(errPanicked)
		}
	}()
	v, err := open(ctx)
	returned = true
	if err != nil {
		end(err)
		return zero, nil, err
	}
	return v, end, nil
}

// Open opens a stream through the stack: Begin, with rpcguard's retry
// engine while the stream is opening (never once open: the stream is the
// caller's then), each opening attempt under an attempt span. Call end when
// the stream ends, with its outcome (nil for a stream that ended well; later
// calls do nothing); it also runs, with ctx's error, when ctx ends first.
// The span of the attempt that opened the stream ends with it. If open
// panics, the call ends as a failure and the panic goes on.
func Open[T any](ctx context.Context, s *Stack, op Op, open func(ctx context.Context) (T, error)) (_ T, end func(error), _ error) {
	var zero T
	if s == nil || open == nil {
		return zero, nil, fmt.Errorf("stack: Open(%q): nil Stack or open function", op.Name)
	}
	var endAttempt func(error)
	v, endCall, err := Begin(ctx, s, op, func(ctx context.Context) (T, error) {
		return retry.Run(ctx, s.policy, op.method(), func(actx context.Context) (T, error) {
			actx, done := s.tg.StartAttempt(actx, op.Name, op.Span)
			ok := false
			defer func() {
				if !ok {
					done(errPanicked)
				}
			}()
			v, err := open(actx)
			ok = true
			if err != nil {
				done(err)
				return zero, err
			}
			endAttempt = done
			return v, nil
		}, append(op.Retry[:len(op.Retry):len(op.Retry)], retry.PerAttemptTimeout(0))...)
	})
	if err != nil {
		return zero, nil, err
	}
	var once sync.Once
	finish := func(err error) {
		once.Do(func() {
			endAttempt(err)
			endCall(err)
		})
	}
	stop := context.AfterFunc(ctx, func() { finish(ctx.Err()) }) // may run at once, on its own goroutine
	return v, func(err error) { stop(); finish(err) }, nil
}
