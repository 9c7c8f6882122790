package retry

import (
	"context"
	"fmt"

	"github.com/rpcguard/rpcguard/selector"
)

// Method names a call of Run, Do or Call for per-method settings
// (WithIdempotent, WithHedging patterns); without it a plain call has the
// method "", which only the pattern "*" matches.
func Method(name string) CallOption { return CallOption{method: &name} }

// Do calls fn with retries, for any client: each attempt gets a node from
// sel that this call has not tried, and its outcome goes back to sel. fn
// returns nil on success; wrap an error with NotSent when the attempt never
// reached the node (a call that is not idempotent is then retried too), or
// with Retryable to retry it whatever its code.
func (p *Policy) Do(ctx context.Context, sel *selector.Selector, fn func(ctx context.Context, node selector.Node) error, opts ...CallOption) error {
	if fn == nil {
		return fmt.Errorf("retry: Do: nil attempt function")
	}
	_, err := Call(ctx, p, sel, func(ctx context.Context, n selector.Node) (struct{}, error) {
		return struct{}{}, fn(ctx, n)
	}, opts...)
	return err
}

// Call is Do for an attempt that produces a value: it returns the value of
// the attempt that succeeded (with hedging, the winner's; the others'
// values are dropped). It is Hedge with a pick from sel in each attempt.
func Call[T any](ctx context.Context, p *Policy, sel *selector.Selector, fn func(ctx context.Context, node selector.Node) (T, error), opts ...CallOption) (T, error) {
	var zero T
	switch {
	case p == nil:
		return zero, fmt.Errorf("retry: Call: nil Policy")
	case sel == nil:
		return zero, fmt.Errorf("retry: Call: nil Selector")
	case fn == nil:
		return zero, fmt.Errorf("retry: Call: nil attempt function")
	}
	return Hedge(ctx, p, "", func(actx context.Context) (T, error) {
		pk, err := sel.Pick(actx)
		if err != nil {
			return zero, err
		}
		v, err := fn(actx, pk.Node)
		pk.Done(err, err == nil || !neverSent(err))
		return v, err
	}, opts...)
}
