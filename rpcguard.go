// Package rpcguard composes the recommended gRPC client stack in one call:
// nodes from a selector.Source through the rpcguard resolver, the
// rpcguard_selector balancer (power of two choices, outlier ejection), and
// the interceptors in their order: the call span, the
// breaker, the retry engine, the attempt spans.
//
// It is optional: every part is usable, and configurable, on its own.
package rpcguard

import (
	"fmt"

	"google.golang.org/grpc"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
)

// DefaultBalancerConfig is the rpcguard_selector configuration the stack
// uses unless WithBalancerConfig says otherwise: power of two choices and
// outlier ejection with its defaults.
const DefaultBalancerConfig = `{"strategy":"p2c","ejection":{}}`

type config struct {
	tracing  *tracing.Tracing
	breaker  *breaker.Breaker
	retry    *retry.Policy
	balancer string
	dial     []grpc.DialOption
}

// Option configures the stack.
type Option func(*config) error

// WithTracing sets the tracing. Default: tracing.New() (the global tracer,
// read at each call; the no-op tracer costs nothing).
func WithTracing(t *tracing.Tracing) Option {
	return func(c *config) error { c.tracing = t; return nil }
}

// WithBreaker sets the breaker. Default: breaker.New with the service's
// name as its namespace and breaker.DefaultSettings (no timeout and no
// concurrency limit: the breaker only opens on server-side failures).
func WithBreaker(b *breaker.Breaker) Option {
	return func(c *config) error { c.breaker = b; return nil }
}

// WithRetry sets the retry policy. Default: retry.New() (3 attempts, the
// default budget, no method idempotent: mark yours with
// retry.WithIdempotent).
func WithRetry(p *retry.Policy) Option {
	return func(c *config) error { c.retry = p; return nil }
}

// WithBalancerConfig sets the rpcguard_selector balancer's JSON config (see
// selector.BalancerName). Default DefaultBalancerConfig.
func WithBalancerConfig(json string) Option {
	return func(c *config) error { c.balancer = json; return nil }
}

// WithDialOptions adds gRPC dial options: transport credentials (required
// by gRPC), your own interceptors (they run inside the attempt spans), ...
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) error { c.dial = append(c.dial, opts...); return nil }
}

// DialOptions returns the dial options of the stack for a client of
// service whose nodes come from src; dial "rpcguard:///SERVICE" with them.
func DialOptions(service string, src selector.Source, opts ...Option) ([]grpc.DialOption, error) {
	if service == "" {
		return nil, fmt.Errorf("rpcguard: empty service name")
	}
	if src == nil {
		return nil, fmt.Errorf("rpcguard: nil selector.Source for service %q", service)
	}
	c := config{balancer: DefaultBalancerConfig}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("rpcguard: nil Option")
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	var err error
	if c.tracing == nil {
		if c.tracing, err = tracing.New(); err != nil {
			return nil, err
		}
	}
	if c.breaker == nil {
		if c.breaker, err = breaker.New(breaker.WithNamespace(service)); err != nil {
			return nil, fmt.Errorf("rpcguard: default breaker for %q: %w (pass WithBreaker)", service, err)
		}
	}
	if c.retry == nil {
		if c.retry, err = retry.New(); err != nil {
			return nil, err
		}
	}
	rb, err := selector.NewResolverBuilder(src)
	if err != nil {
		return nil, fmt.Errorf("rpcguard: service %q: %w", service, err)
	}
	return append([]grpc.DialOption{
		grpc.WithResolvers(rb),
		grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:%s}]}`, selector.BalancerName, c.balancer)),
		grpc.WithChainUnaryInterceptor(c.tracing.UnaryClientInterceptor(), c.breaker.UnaryClientInterceptor(),
			c.retry.UnaryClientInterceptor(), c.tracing.AttemptUnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(c.tracing.StreamClientInterceptor(), c.breaker.StreamClientInterceptor(),
			c.retry.StreamClientInterceptor(), c.tracing.AttemptStreamClientInterceptor()),
	}, c.dial...), nil
}

// NewClient creates a gRPC client of service with the stack: one line for
// a resilient, traced client.
func NewClient(service string, src selector.Source, opts ...Option) (*grpc.ClientConn, error) {
	dopts, err := DialOptions(service, src, opts...)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(selector.Scheme+":///"+service, dopts...)
}
