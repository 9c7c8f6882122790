package stack

import (
	"context"
	"fmt"
	"sync"

	"github.com/rpcguard/rpcguard/retry"
)

// Begin starts a long-lived call (a stream) at the call level: the call
// span, then the breaker's admission (refused at once while the circuit is
// open; a stream has no Timeout: it may rightly live long). end finishes it
// with the stream's outcome: the breaker's slot, the event and the span; it
// may be called more than once (the first call counts), from any goroutine.
// Open is Begin with rpcguard's retry engine opening the stream; transports
// whose streams need their own retry adapter (gRPC's) use Begin directly.
func (s *Stack) Begin(ctx context.Context, op Op) (_ context.Context, end func(error), _ error) {
	if s == nil {
		return ctx, nil, fmt.Errorf("stack: Begin(%q): nil Stack", op.Name)
	}
	ctx, finish := s.tg.StartCall(ctx, op.Name, op.Span...)
	adm, err := s.brk.Allow(ctx, op.Name)
	if err != nil {
		finish(err)
		return ctx, nil, err
	}
	var once sync.Once
	return ctx, func(err error) {
		once.Do(func() { finish(adm.Done(err)) })
	}, nil
}

// Open opens a stream through the stack: Begin, then rpcguard's retry engine
// while the stream is opening (never once open: the stream is the caller's
// then), each opening attempt under an attempt span. Call end when the
// stream ends, with its outcome (nil for a stream that ended well; later
// calls do nothing); it also runs, with ctx's error, when ctx ends first.
// The span of the attempt that opened the stream ends with it. If open
// panics, the call ends as a failure and the panic goes on.
func Open[T any](ctx context.Context, s *Stack, op Op, open func(ctx context.Context) (T, error)) (_ T, end func(error), _ error) {
	var zero T
	if open == nil {
		return zero, nil, fmt.Errorf("stack: Open(%q): nil open function", op.Name)
	}
	ctx, endCall, err := s.Begin(ctx, op)
	if err != nil {
		return zero, nil, err
	}
	returned := false
	defer func() {
		if !returned {
			endCall(errPanicked)
		}
	}()
	var endAttempt func(error)
	v, err := retry.Run(ctx, s.policy, op.method(), func(actx context.Context) (T, error) {
		actx, done := s.tg.StartAttempt(actx, op.Name, op.Span...)
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
	returned = true
	if err != nil {
		endCall(err)
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
