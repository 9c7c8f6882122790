// Package rpcguard composes the recommended gRPC client stack in one call:
// nodes from a selector.Source through the rpcguard resolver, the
// rpcguard_selector balancer (power of two choices, outlier ejection), and
// the one stack of package stack as an interceptor: the call span, the
// breaker, the retry engine, the attempt spans.
//
// It is optional: every part is usable, and configurable, on its own.
package rpcguard

import (
	"encoding/json"
	"fmt"
	"maps"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/stack"
	"github.com/rpcguard/rpcguard/tracing"
)

// DefaultBalancerConfig is the rpcguard_selector configuration the stack
// uses unless WithBalancerConfig says otherwise: power of two choices and
// outlier ejection with its defaults.
const DefaultBalancerConfig = `{"strategy":"p2c","ejection":{}}`

type config struct {
	stack    *stack.Stack
	stackOps []stack.Option
	balancer string
	sc       map[string]json.RawMessage // extra service-config fields
	selOpts  []selector.Option
	dial     []grpc.DialOption
}

// Option configures the stack.
type Option func(*config) error

// WithStack sets the whole stack (stack.New): the same engines, and so the
// same circuits and budget, can then serve gRPC and go-micro clients alike.
// It excludes WithTracing, WithBreaker and WithRetry.
func WithStack(s *stack.Stack) Option {
	return func(c *config) error {
		if s == nil {
			return fmt.Errorf("rpcguard: WithStack(nil)")
		}
		c.stack = s
		return nil
	}
}

// WithTracing sets the stack's tracing (stack.WithTracing; default: the
// global tracer, read at each call; the no-op tracer costs nothing).
func WithTracing(t *tracing.Tracing) Option { return withStackOption(stack.WithTracing(t)) }

// WithBreaker sets the stack's breaker (stack.WithBreaker; default: the
// namespace stack.DefaultNamespace and breaker.DefaultSettings, no timeout
// and no concurrency limit: the breaker only opens on server-side failures).
func WithBreaker(b *breaker.Breaker) Option { return withStackOption(stack.WithBreaker(b)) }

// WithRetry sets the stack's retry policy (stack.WithRetry; default
// retry.New(): 3 attempts, the default budget, no method idempotent: mark
// yours with retry.WithIdempotent).
func WithRetry(p *retry.Policy) Option { return withStackOption(stack.WithRetry(p)) }

func withStackOption(o stack.Option) Option {
	return func(c *config) error { c.stackOps = append(c.stackOps, o); return nil }
}

// WithBalancerConfig sets the rpcguard_selector balancer's JSON config (see
// selector.BalancerName), validated when NewClient runs. Default
// DefaultBalancerConfig.
func WithBalancerConfig(js string) Option {
	return func(c *config) error {
		parser := balancer.Get(selector.BalancerName).(balancer.ConfigParser)
		if _, err := parser.ParseConfig(json.RawMessage(js)); err != nil {
			return fmt.Errorf("rpcguard: WithBalancerConfig: %w", err)
		}
		c.balancer = js
		return nil
	}
}

// WithServiceConfig adds fields to the client's gRPC service config, beside
// the rpcguard balancer: a healthCheckConfig (with
// google.golang.org/grpc/health imported), a methodConfig, ... It is a JSON
// object; a loadBalancingConfig in it is refused (use WithBalancerConfig).
func WithServiceConfig(js string) Option {
	return func(c *config) error {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(js), &fields); err != nil {
			return fmt.Errorf("rpcguard: WithServiceConfig: not a JSON object: %w", err)
		}
		for k := range fields {
			if k == "loadBalancingConfig" || k == "loadBalancingPolicy" {
				return fmt.Errorf("rpcguard: WithServiceConfig: %q would replace rpcguard's balancer: use WithBalancerConfig", k)
			}
		}
		if c.sc == nil {
			c.sc = map[string]json.RawMessage{}
		}
		maps.Copy(c.sc, fields)
		return nil
	}
}

// WithSelectorOptions sets Go options of the client's selectors, the ones
// the service config cannot carry: hooks (ejections, returns, node-set
// updates) and a classifier. They reach the one registered
// rpcguard_selector balancer through the client's resolver
// (selector.NewResolverBuilder's options); the balancer's JSON config still applies.
func WithSelectorOptions(opts ...selector.Option) Option {
	return func(c *config) error { c.selOpts = append(c.selOpts, opts...); return nil } // checked by the resolver's builder
}

// WithDialOptions adds gRPC dial options: transport credentials (required
// by gRPC), your own interceptors (they run inside the attempt spans), ...
// rpcguard's service config is applied after them: a
// grpc.WithDefaultServiceConfig here has no effect; pass its fields with
// WithServiceConfig.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) error {
		for i, o := range opts {
			if o == nil {
				return fmt.Errorf("rpcguard: WithDialOptions: option %d is nil", i)
			}
		}
		c.dial = append(c.dial, opts...)
		return nil
	}
}

// validService checks a service name: it names the rpcguard:///SERVICE
// target, the registry's entries and the default breaker's circuits.
func validService(service string) error {
	if service == "" {
		return fmt.Errorf("rpcguard: empty service name")
	}
	if c := service[0]; c == '.' || c == '_' || c == '-' {
		return fmt.Errorf("rpcguard: service name %q: start it with a letter or a digit", service)
	}
	for _, r := range service {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("rpcguard: service name %q: use letters, digits, '.', '_' and '-' (it names the rpcguard:///SERVICE target, the registry's entries and the breaker's circuits; put a version in the node metadata instead of the name)", service)
		}
	}
	return nil
}

// DialOptions returns the dial options of the stack for a client of
// service whose nodes come from src; dial "rpcguard:///SERVICE" with them.
func DialOptions(service string, src selector.Source, opts ...Option) ([]grpc.DialOption, error) {
	if err := validService(service); err != nil {
		return nil, err
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
	if c.stack != nil && len(c.stackOps) > 0 {
		return nil, fmt.Errorf("rpcguard: WithStack excludes WithTracing, WithBreaker and WithRetry: set them in stack.New")
	}
	if c.stack == nil {
		var err error
		if c.stack, err = stack.New(c.stackOps...); err != nil {
			return nil, fmt.Errorf("rpcguard: service %q: %w", service, err)
		}
	}
	rb, err := selector.NewResolverBuilder(src, c.selOpts...)
	if err != nil {
		return nil, fmt.Errorf("rpcguard: service %q: %w", service, err)
	}
	sc := map[string]json.RawMessage{"loadBalancingConfig": json.RawMessage(fmt.Sprintf(`[{%q:%s}]`, selector.BalancerName, c.balancer))}
	maps.Copy(sc, c.sc)
	scJSON, err := json.Marshal(sc)
	if err != nil {
		return nil, fmt.Errorf("rpcguard: service %q: service config: %w", service, err)
	}
	span := tracing.SpanInfo{Component: "gRPC", PeerService: service}
	// The stack's interceptors come first (the user's run inside them),
	// rpcguard's service config last (it wins over any other).
	dopts := []grpc.DialOption{
		grpc.WithResolvers(rb),
		grpc.WithChainUnaryInterceptor(unaryClientInterceptor(c.stack, span)),
		grpc.WithChainStreamInterceptor(streamClientInterceptor(c.stack, span)),
	}
	dopts = append(dopts, c.dial...)
	return append(dopts, grpc.WithDefaultServiceConfig(string(scJSON))), nil
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
