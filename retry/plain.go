package retry

import (
	"context"
	"fmt"

	"github.com/rpcguard/rpcguard/selector"
)

// Method names the plain-API call for per-method settings (WithIdempotent,
// WithHedging patterns); plain calls have the method "" otherwise, which only
// the pattern "*" matches.
func Method(name string) CallOption {
	return CallOption{apply: func(c *callConfig) { c.method = name }}
}

// Do calls fn with retries, for any client: each attempt gets a node from
// sel that this call has not tried, and its outcome goes back to sel. fn
// returns nil on success; wrap an error with NotSent when the attempt never
// reached the node (a non-idempotent call is then retried too).
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
// values are dropped).
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
	cc := p.plainConfig(opts)
	if cc.err != nil {
		return zero, cc.err
	}
	ctx = selector.EnsureCall(ctx)
	attempt := func(actx context.Context) (T, outcome) {
		pk, err := sel.Pick(actx)
		if err != nil {
			return zero, outcome{err: err}
		}
		v, err := fn(actx, pk.Node)
		sent := err == nil || !neverSent(err)
		pk.Finish(err, sent)
		return v, outcome{err: err, node: pk.Node, sent: sent}
	}
	if cc.hedgeDelay > 0 {
		return hedge(ctx, p, &cc, attempt)
	}
	var v T
	err := p.run(ctx, &cc, func(actx context.Context, _ int) outcome {
		var out outcome
		v, out = attempt(actx)
		return out
	})
	return v, err
}

// plainConfig resolves the policy for a plain call: the Method option first,
// then the others.
func (p *Policy) plainConfig(opts []CallOption) callConfig {
	var probe callConfig
	for _, o := range opts {
		probe = o.on(probe)
	}
	c := p.resolve(probe.method)
	for _, o := range opts {
		c = o.on(c)
	}
	return c.finish()
}
