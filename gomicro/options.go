package gomicro

import (
	"fmt"
	"sync/atomic"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/faultinject"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/shed"
	"github.com/rpcguard/rpcguard/stack"
	"github.com/rpcguard/rpcguard/tracing"
)

// Option configures the wrappers.
type Option func(*config) error

type config struct {
	stack    *stack.Stack
	stackOps []stack.Option
	faults   *faultinject.Injector
	shed     *shed.Limiter
	node     string            // the node a handler wrapper serves as, for faults
	sopts    []selector.Option // ServiceOptions' selector's
	wrapped  atomic.Pointer[guardClient]
}

// WithSelectorOptions sets the options of ServiceOptions' selector
// (NewSelector's; default power of two choices and
// selector.DefaultEjection). Only ServiceOptions takes it.
func WithSelectorOptions(opts ...selector.Option) Option {
	return func(c *config) error {
		if len(opts) == 0 {
			return fmt.Errorf("gomicro: WithSelectorOptions: no option")
		}
		c.sopts = opts
		return nil
	}
}

// WithStack sets the whole stack (stack.New), so that go-micro and gRPC
// clients can share its circuits and budget. It excludes WithTracing,
// WithBreaker and WithRetry.
func WithStack(s *stack.Stack) Option {
	return func(c *config) error {
		if s == nil {
			return fmt.Errorf("gomicro: WithStack(nil)")
		}
		c.stack = s
		return nil
	}
}

// WithTracing sets the stack's tracing (stack.WithTracing).
func WithTracing(t *tracing.Tracing) Option { return withStackOption(stack.WithTracing(t)) }

// WithBreaker sets the stack's breaker (stack.WithBreaker).
func WithBreaker(b *breaker.Breaker) Option { return withStackOption(stack.WithBreaker(b)) }

// WithRetry sets the stack's retry policy (stack.WithRetry); its method
// patterns name go-micro endpoints ("Greeter.Hello", "Greeter.*").
func WithRetry(p *retry.Policy) Option { return withStackOption(stack.WithRetry(p)) }

func withStackOption(o stack.Option) Option {
	return func(c *config) error { c.stackOps = append(c.stackOps, o); return nil }
}

// WithFaults injects inj's faults (default none). A handler wrapper serves
// as node (go-micro's NAME-ID, matched by the rules' Node) and applies a
// fault before the handler, inside the breaker. A call wrapper ignores node
// and matches the node each attempt goes to: Down, Code, HTTPStatus and
// Abort fail the attempt as never sent, Hang holds it to its deadline,
// Latency delays it. Header activation does not apply on go-micro.
func WithFaults(inj *faultinject.Injector, node string) Option {
	return func(c *config) error { c.faults, c.node = inj, node; return nil }
}

// WithShedder puts l in front of a handler or subscriber wrapper: a
// request that waited too long in a standing queue is refused with 429
// (package shed; its wait is the Go scheduler's). Off by default.
func WithShedder(l *shed.Limiter) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("gomicro: WithShedder(nil)")
		}
		c.shed = l
		return nil
	}
}

// The roles a config is built for: options of another role are refused.
const (
	forService = iota
	forClient
	forServer
)

func build(opts []Option, role int) (*config, error) {
	c := &config{}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("gomicro: nil Option")
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	switch {
	case c.stack != nil && len(c.stackOps) > 0:
		return nil, fmt.Errorf("gomicro: WithStack excludes WithTracing, WithBreaker and WithRetry: set them in stack.New")
	case role != forService && c.sopts != nil:
		return nil, fmt.Errorf("gomicro: WithSelectorOptions is ServiceOptions' (or pass the options to NewSelector)")
	case role == forClient && c.shed != nil:
		return nil, fmt.Errorf("gomicro: WithShedder is a server's option (NewHandlerWrapper, NewSubscriberWrapper, ServiceOptions)")
	case c.stack == nil:
		var err error
		if c.stack, err = stack.New(c.stackOps...); err != nil {
			return nil, fmt.Errorf("gomicro: %w", err)
		}
	}
	return c, nil
}
