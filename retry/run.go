package retry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/selector"
)

// Run runs one call under p, for any transport, one attempt at a time:
// attempt is called once per attempt with the attempt's context (its
// per-attempt timeout, its entry in the call's selector record), and its
// error decides what happens next: the budget, the backoff, the retryable
// codes, as the Policy and opts say for method (a gRPC full method, or any
// name the Policy's patterns match). Use Hedge for a call that may be
// hedged.
//
// What an attempt did is read from the call's record, as rpcguard's
// selector writes it: the node it went to, and whether the request may have
// reached it (Picked.Done, the gRPC balancer); without a record entry the
// attempt counts as sent unless its error says otherwise (NotSent, a
// refused connection). A call not marked idempotent is retried only after
// attempts that were not sent. Mark an error Retryable to retry it whatever
// its code, and attach a server's pushback with Pushback.
//
// (Run is kept out of line: inlined into an adapter, it made the adapter's
// attempt closure cost an allocation, measured in BenchmarkUnary.)
//
//go:noinline
func Run[T any](ctx context.Context, p *Policy, method string, attempt func(ctx context.Context) (T, error), opts ...CallOption) (T, error) {
	var zero T
	if p == nil || attempt == nil {
		return zero, fmt.Errorf("retry: Run(%q): nil Policy or attempt function", method)
	}
	cc := p.config(method, opts)
	if cc.err != nil {
		return zero, status.Error(codes.InvalidArgument, cc.err.Error())
	}
	return run(selector.JoinRecord(ctx), p, &cc, attempt)
}

// Hedge is Run for a call that the Policy hedges (WithHedging, for an
// idempotent method): its attempts run side by side, each producing its own
// value, and the first success is returned for the caller to commit (the
// others' contexts are cancelled and their values dropped; every attempt's
// context ends when Hedge returns). For a method the Policy does not hedge,
// it is Run.
func Hedge[T any](ctx context.Context, p *Policy, method string, attempt func(ctx context.Context) (T, error), opts ...CallOption) (T, error) {
	var zero T
	if p == nil || attempt == nil {
		return zero, fmt.Errorf("retry: Hedge(%q): nil Policy or attempt function", method)
	}
	cc := p.config(method, opts)
	if cc.err != nil {
		return zero, status.Error(codes.InvalidArgument, cc.err.Error())
	}
	ctx = selector.JoinRecord(ctx)
	if cc.hedgeDelay <= 0 {
		return run(ctx, p, &cc, attempt)
	}
	return hedge(ctx, p, &cc, func(actx context.Context) (T, outcome) {
		v, err := attempt(actx)
		return v, outcomeOf(actx, err)
	})
}

// outcomeOf describes an attempt from its error and the call's record.
func outcomeOf(actx context.Context, err error) outcome {
	if err == nil {
		return outcome{}
	}
	out := outcome{err: err, sent: true}
	var pb *pushbackError
	if errors.As(err, &pb) {
		out.err, out.hasPushback, out.pushback = pb.error, true, pb.d
	}
	a, ok := selector.AttemptFrom(actx)
	picked := ok && a.Picked
	if picked {
		out.node = a.Node
	}
	switch {
	case neverSent(out.err):
		out.sent = false
	case picked && a.Done:
		out.sent = a.Sent
	}
	return out
}

// Pushback attaches a server's retry pushback (gRFC A6's
// grpc-retry-pushback-ms) to an attempt's error: the next attempt waits d,
// instead of the backoff; a negative d says not to retry.
func Pushback(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &pushbackError{err, d}
}

type pushbackError struct {
	error
	d time.Duration
}

func (e *pushbackError) Unwrap() error { return e.error }

// config resolves the Policy for one call of method with opts: the one
// resolver for gRPC call options and plain calls alike (a Method option
// renames the method first).
func (p *Policy) config(method string, opts []CallOption) callConfig {
	for _, o := range opts {
		if o.method != nil {
			method = *o.method
		}
	}
	c := p.resolve(method)
	for _, o := range opts {
		c = o.on(c)
	}
	return c.finish()
}

// settings is what a Policy says for one call: the gRPC adapters read it
// to choose between Run and Hedge, or to enforce a per-attempt timeout of
// their own (a stream's wait for its first message).
type settings struct {
	Idempotent  bool
	MaxAttempts int
	PerAttempt  time.Duration // 0: none
	HedgeDelay  time.Duration // 0: not hedged
	Err         error         // a bad CallOption: the call fails with it
}

// Hedged reports whether the Policy hedges a call of method with opts
// (WithHedging, an idempotent method): a transport then gives each attempt a
// reply of its own (Hedge).
func (p *Policy) Hedged(method string, opts ...CallOption) bool {
	return p.settings(method, opts...).HedgeDelay > 0
}

// settings resolves the Policy for a call of method with opts.
func (p *Policy) settings(method string, opts ...CallOption) settings {
	c := p.config(method, opts)
	s := settings{Idempotent: c.idempotent, MaxAttempts: c.maxAttempts, PerAttempt: c.perAttempt, HedgeDelay: c.hedgeDelay}
	if c.err != nil {
		s.Err = status.Error(codes.InvalidArgument, c.err.Error())
	}
	return s
}
