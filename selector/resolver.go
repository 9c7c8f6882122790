package selector

import (
	"context"
	"fmt"
	"reflect"
	"slices"
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
// reported (Hooks.OnDropped; default: gRPC's log), and the rest is applied. A
// set with no valid node is reported to gRPC as a resolver error and the
// last good set stays in use. Each update sets both Addresses and Endpoints,
// and carries the Node (ID, metadata) to the rpcguard_selector balancer.
//
// opts are the Go options of the Selectors that the rpcguard_selector
// balancer builds for this resolver's clients, those the service config
// cannot carry (hooks, a classifier, WithOnNew); they reach the balancer in
// the resolver's state (no balancer of its own is registered), and the
// service config's fields override the options they name.
func NewResolverBuilder(src Source, opts ...Option) (resolver.Builder, error) {
	if isNil(src) {
		return nil, fmt.Errorf("selector: NewResolverBuilder: nil Source")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("selector: NewResolverBuilder: %w", err)
	}
	b := &resolverBuilder{src: src, onDropped: o.onDropped()}
	if len(opts) > 0 {
		b.selOpts = &selectorOptions{opts: slices.Clone(opts)}
	}
	return b, nil
}

var logger = grpclog.Component("rpcguard")

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
