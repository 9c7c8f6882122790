package retry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/internal/ctxwait"
	"github.com/rpcguard/rpcguard/selector"
)

// outcome is what one attempt tells the engine.
type outcome struct {
	err         error
	node        selector.Node
	sent        bool // the attempt may have reached a server
	timedOut    bool // the attempt's own timeout ended it (set by attempts that enforce it themselves)
	pushback    time.Duration
	hasPushback bool // the server sent grpc-retry-pushback-ms (negative: do not retry)
}

// overloaded reports whether a server refused the attempt with
// ResourceExhausted: the fleet is full.
func (o outcome) overloaded() bool {
	return o.sent && status.Code(o.err) == codes.ResourceExhausted && !localLimit(o.err)
}

// run is the retry loop shared by every transport, one attempt at a time.
// ctx carries the call's selector record; attempt runs one attempt with the
// context it is given. attempt does not escape: an adapter's closure stays
// on its stack.
func run[T any](ctx context.Context, p *Policy, cc *callConfig, attempt func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	call := selector.RecordFrom(ctx)
	var (
		bo     backoff.BackOff
		tries  []FailedAttempt
		delay  time.Duration
		reason error
		// An attempt that panics gives back its concurrency slot and its
		// timer; the panic goes on to the caller.
		holding bool
		cancel  context.CancelFunc
	)
	defer func() {
		if holding {
			p.limit.release(false, false, 0)
			if cancel != nil {
				cancel()
			}
		}
	}()
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil { // no attempt after the caller gave up
			return zero, p.failure(tries, reason, ctxError{err: err})
		}
		if err := p.limit.acquire(ctx); err != nil { // waits only while the fleet is full
			if err == ErrFleetFull {
				return zero, p.failure(tries, err, nil)
			}
			return zero, p.failure(tries, reason, ctxError{err: err})
		}
		holding = true
		call.StartAttempt(n, delay)
		actx := ctx
		cancel = nil
		if cc.perAttempt > 0 {
			actx, cancel = context.WithTimeout(ctx, cc.perAttempt)
		}
		start := time.Now()
		v, err := attempt(actx)
		holding = false
		out := outcomeOf(actx, err)
		p.limit.release(out.overloaded(), out.err == nil, time.Since(start))
		if cancel != nil {
			out.timedOut = out.timedOut || ownTimeout(actx, ctx, out.err)
			cancel()
		}
		if out.err == nil {
			p.budget.deposit()
			return v, nil
		}
		tries = append(tries, FailedAttempt{Number: n, Node: out.node, Err: out.err, Delay: delay, Duration: time.Since(start)})
		if err := callerEnded(ctx); err != nil && endedBy(out.err) {
			// The caller gave up during the attempt: the call's error is
			// the caller's, whenever it landed, in gRPC's words when they
			// explain more (waiting for a connection: the last connection
			// error).
			return zero, p.failure(tries, reason, ctxError{err, out.err})
		}
		if ctx.Err() != nil || !(out.timedOut || p.retryable(out.err)) {
			break
		}
		if !cc.idempotent && out.sent {
			break // it may have reached a server: only idempotent calls go again
		}
		if n >= cc.maxAttempts {
			reason = ErrAttemptsExhausted
			break
		}
		if delay = p.nextDelay(call, &bo, out); delay < 0 {
			break
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= delay {
			break // the retry could not start before the deadline
		}
		if !p.budget.withdraw(time.Now().UnixNano()) {
			reason = ErrBudgetExhausted
			break
		}
		if h := p.cfg.hooks.OnRetry; h != nil {
			h(ctx, RetryInfo{Method: cc.method, Attempt: n + 1, Delay: delay, Err: out.err, Node: out.node})
		}
		if err := ctxwait.Sleep(ctx, delay); err != nil {
			return zero, p.failure(tries, reason, ctxError{err: err})
		}
	}
	return zero, p.failure(tries, reason, nil)
}

// nextDelay returns the wait before the next attempt, or -1 to stop: the
// server's pushback if it sent one; none (the fresh-node delay) if the
// call's selector has a node the call has not tried; else the backoff.
func (p *Policy) nextDelay(call *selector.Record, bo *backoff.BackOff, out outcome) time.Duration {
	if out.hasPushback {
		return out.pushback
	}
	if n, known := call.Untried(); known && n > 0 {
		return p.cfg.freshDelay
	}
	if *bo == nil {
		*bo = p.newBackOff()
	}
	d := (*bo).NextBackOff()
	if d == backoff.Stop {
		return -1
	}
	return d
}

// ownTimeout reports whether an attempt with its own timeout (actx) ended by
// it: its context expired, or it failed with DeadlineExceeded while the
// call's context is alive (the server, which got the attempt's deadline,
// may answer before the client's timer fires).
func ownTimeout(actx, ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	return actx.Err() == context.DeadlineExceeded || (err != nil && status.Code(err) == codes.DeadlineExceeded)
}

// callerEnded returns the caller's context's error, or DeadlineExceeded once
// its deadline has passed even if ctx has not noticed yet (gRPC's own timer
// may end an attempt a moment before the context's fires).
func callerEnded(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// endedBy reports whether an attempt's error is a context's end (gRPC's
// Canceled or DeadlineExceeded, or the context errors themselves): when the
// caller's context has ended too, the caller ended it.
func endedBy(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	c := status.Code(err)
	return c == codes.Canceled || c == codes.DeadlineExceeded
}

// failure builds the call's error. The error it carries is the last one
// that came from a server or transport (a failed pick after a real failure
// says less than the failure), or cause when the caller gave up. A call that
// made one attempt and stopped on its error returns that error as it is.
func (p *Policy) failure(tries []FailedAttempt, reason, cause error) error {
	last := cause
	for i := len(tries) - 1; i >= 0 && last == nil; i-- {
		if !pickFailed(tries[i].Err) {
			last = tries[i].Err
		}
	}
	if last == nil && len(tries) > 0 {
		last = tries[len(tries)-1].Err
	}
	if len(tries) <= 1 && reason == nil {
		return last
	}
	return &Error{Attempts: tries, Err: last, Reason: reason}
}

// ctxError is the caller's cancellation or deadline, answering both
// errors.Is(err, context.Canceled) and status.Code(err) == codes.Canceled,
// in gRPC's words: the attempt's own status when the transport reported the
// same end (its message may explain more), else the context's.
type ctxError struct {
	err     error
	attempt error // the attempt's error that the caller's end caused, or nil
}

func (e ctxError) Error() string { return e.GRPCStatus().Err().Error() }
func (e ctxError) Unwrap() error { return e.err }
func (e ctxError) GRPCStatus() *status.Status {
	st := status.FromContextError(e.err)
	if as, ok := status.FromError(e.attempt); ok && e.attempt != nil && as.Code() == st.Code() {
		return as
	}
	return st
}
