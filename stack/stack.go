// Package stack is rpcguard's one composition of its engines, the stack
// every transport uses. A client call runs as
//
//	call span (tracing) → breaker → retry (attempts) → attempt span → the transport
//
// and a served call as
//
//	server span (tracing) → breaker → the handler.
//
// Start with New and Do (a call), Open (a stream) or Serve (a handler). The
// gRPC client stack of rpcguard.NewClient, go-micro's
// wrappers (package gomicro), the HTTP Middleware and the plain Call are
// thin adapters on these functions, so that a setting (a breaker Timeout,
// a panic guard, a default) behaves the same on every transport.
package stack

import (
	"fmt"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/tracing"
)

// DefaultNamespace is the default breaker's namespace: its hystrix
// commands are "rpcguard/COMMAND" on every transport.
const DefaultNamespace = "rpcguard"

// Stack holds the engines of one client or server: tracing, breaker and
// retry policy. It is safe for concurrent use.
type Stack struct {
	tg     *tracing.Tracing
	brk    *breaker.Breaker
	policy *retry.Policy
}

// Option configures a Stack.
type Option func(*Stack) error

// WithTracing sets the tracing. Default tracing.New() (the global tracer,
// read at each call; the no-op tracer costs nothing).
func WithTracing(t *tracing.Tracing) Option {
	return func(s *Stack) error {
		if t == nil {
			return fmt.Errorf("stack: WithTracing(nil)")
		}
		s.tg = t
		return nil
	}
}

// WithBreaker sets the breaker. Default: breaker.New with DefaultNamespace
// and breaker.DefaultSettings (no timeout, no concurrency limit: it opens
// only on server-side failures).
func WithBreaker(b *breaker.Breaker) Option {
	return func(s *Stack) error {
		if b == nil {
			return fmt.Errorf("stack: WithBreaker(nil)")
		}
		s.brk = b
		return nil
	}
}

// WithRetry sets the retry policy. Default retry.New() (3 attempts, the
// default budget, no method idempotent: mark yours with
// retry.WithIdempotent).
func WithRetry(p *retry.Policy) Option {
	return func(s *Stack) error {
		if p == nil {
			return fmt.Errorf("stack: WithRetry(nil)")
		}
		s.policy = p
		return nil
	}
}

// New builds a Stack; every engine not given takes its default.
func New(opts ...Option) (*Stack, error) {
	s := &Stack{}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("stack: nil Option")
		}
		if err := o(s); err != nil {
			return nil, err
		}
	}
	var err error
	if s.tg == nil {
		if s.tg, err = tracing.New(); err != nil {
			return nil, err
		}
	}
	if s.brk == nil {
		if s.brk, err = breaker.New(breaker.WithNamespace(DefaultNamespace)); err != nil {
			return nil, err
		}
	}
	if s.policy == nil {
		if s.policy, err = retry.New(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Tracing returns the Stack's tracing, for a transport's carrier (Inject).
func (s *Stack) Tracing() *tracing.Tracing { return s.tg }

// Breaker returns the Stack's breaker.
func (s *Stack) Breaker() *breaker.Breaker { return s.brk }

// Policy returns the Stack's retry policy, for a transport that asks it
// whether a call is hedged (Policy.Hedged).
func (s *Stack) Policy() *retry.Policy { return s.policy }
