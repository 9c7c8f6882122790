package selector

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/resolver"
)

// Scheme is the URI scheme of the resolver: a target "rpcguard:///greeter"
// resolves the service "greeter" through the resolver's Source.
const Scheme = "rpcguard"

// NewResolverBuilder returns a gRPC resolver builder for Scheme that takes
// nodes from src. Pass it to grpc.NewClient with grpc.WithResolvers (no
// global registration needed):
//
//	rb, err := selector.NewResolverBuilder(src)
//	...
//	grpc.NewClient("rpcguard:///greeter", grpc.WithResolvers(rb), ...)
//
// Every node set is filtered: a bad entry (an invalid address,
// an ID or address another node already has) is dropped on its own and
// reported (WithOnDropped; default: gRPC's log), and the rest is applied. A
// set with no valid node is reported to gRPC as a resolver error and the
// last good set stays in use. Each update sets both Addresses and Endpoints,
// and carries the Node (ID, metadata) to the rpcguard_selector balancer.
func NewResolverBuilder(src Source, opts ...ResolverOption) (resolver.Builder, error) {
	return newResolverBuilder(src, opts)
}

func newResolverBuilder(src Source, opts []ResolverOption) (*resolverBuilder, error) {
	if isNil(src) {
		return nil, fmt.Errorf("selector: NewResolverBuilder: nil Source")
	}
	b := &resolverBuilder{src: src, onDropped: func(service string, err error) {
		logger.Warningf("service %q: dropped a node entry: %v", service, err)
	}}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("selector: NewResolverBuilder: nil ResolverOption")
		}
		if err := o(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

var logger = grpclog.Component("rpcguard")

// ResolverOption configures NewResolverBuilder.
type ResolverOption func(*resolverBuilder) error

// WithOnDropped sets what runs for each node entry the resolver drops (an
// invalid node, or an ID or address an earlier entry has), with the service and the reason. It runs on the resolver's
// goroutine and must not block. Default: a warning in gRPC's log.
func WithOnDropped(f func(service string, err error)) ResolverOption {
	return func(b *resolverBuilder) error {
		if f == nil {
			return fmt.Errorf("selector: WithOnDropped: nil function")
		}
		b.onDropped = f
		return nil
	}
}

// isNil reports whether v is nil or an interface holding a nil pointer (a
// nil *health.Memory passed as a Source, say).
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

type resolverBuilder struct {
	src       Source
	onDropped func(service string, err error)
	selOpts   *selectorOptions // for the rpcguard_selector balancer; nil: none
}

// selectorOptions travel from a resolver to the balancer in the resolver
// state's attributes: one registered balancer serves every client, each
// with its own options (attributes compare by pointer).
type selectorOptions struct{ opts []Option }

type selectorOptionsKey struct{}

// WithSelectorOptions gives the Selectors that the rpcguard_selector
// balancer builds for this resolver's clients the Go options the service
// config cannot carry: hooks, a classifier, WithOnNew. The balancer reads
// them from the resolver's state (no balancer of its own is registered);
// the service config's fields override the options they name.
func WithSelectorOptions(opts ...Option) ResolverOption {
	return func(b *resolverBuilder) error {
		if err := checkOptions(opts...); err != nil {
			return fmt.Errorf("selector: WithSelectorOptions: %w", err)
		}
		if b.selOpts == nil {
			b.selOpts = &selectorOptions{}
		}
		b.selOpts.opts = append(b.selOpts.opts, opts...)
		return nil
	}
}

func (b *resolverBuilder) Scheme() string { return Scheme }

func (b *resolverBuilder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	service := strings.TrimPrefix(t.Endpoint(), "/")
	if service == "" {
		return nil, fmt.Errorf("selector: target %q names no service (want %s:///SERVICE)", t.URL.String(), Scheme)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := b.src.Watch(ctx, service)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("selector: watch service %q: %w", service, err)
	}
	r := &sourceResolver{service: service, cc: cc, w: w, cancel: cancel, onDropped: b.onDropped, selOpts: b.selOpts}
	r.wg.Add(1)
	go r.run(ctx)
	return r, nil
}

type sourceResolver struct {
	service   string
	cc        resolver.ClientConn
	w         Watcher
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	onDropped func(service string, err error)
	selOpts   *selectorOptions
}

func (r *sourceResolver) run(ctx context.Context) {
	defer r.wg.Done()
	follow(ctx, r.w, r.service, r.onDropped, func(nodes []Node) {
		st := resolver.State{
			Addresses: make([]resolver.Address, len(nodes)),
			Endpoints: make([]resolver.Endpoint, len(nodes)),
		}
		for i, n := range nodes {
			a := addressOf(n)
			st.Addresses[i] = a
			st.Endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{a}}
		}
		if r.selOpts != nil {
			st.Attributes = attributes.New(selectorOptionsKey{}, r.selOpts)
		}
		_ = r.cc.UpdateState(st) // an error means the balancer rejected the set; it logs why
	}, r.cc.ReportError)
}

// ResolveNow does nothing: the Source pushes every change.
func (r *sourceResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops the watch and waits for the resolver's goroutine to end.
func (r *sourceResolver) Close() {
	r.cancel()
	r.w.Stop()
	r.wg.Wait()
}
