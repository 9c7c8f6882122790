package selector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"
)

// Scheme is the URI scheme of the resolver: a target "rpcguard:///greeter"
// resolves the service "greeter" through the resolver's Source.
const Scheme = "rpcguard"

// NewResolverBuilder returns a gRPC resolver builder for Scheme that takes
// nodes from src. Pass it to grpc.NewClient with grpc.WithResolvers (no
// global registration needed):
//
//	grpc.NewClient("rpcguard:///greeter", grpc.WithResolvers(selector.NewResolverBuilder(src)), ...)
//
// Every node set is validated (ValidateNodes); an invalid or empty set is
// reported to gRPC as a resolver error and the last good set stays in use.
// Each update sets both Addresses and Endpoints, and carries the Node (ID,
// metadata) to the rpcguard_selector balancer.
func NewResolverBuilder(src Source) resolver.Builder {
	return &resolverBuilder{src: src}
}

type resolverBuilder struct{ src Source }

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
	r := &sourceResolver{service: service, cc: cc, w: w, cancel: cancel}
	r.wg.Add(1)
	go r.run(ctx)
	return r, nil
}

type sourceResolver struct {
	service string
	cc      resolver.ClientConn
	w       Watcher
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Watch errors are retried after a delay that doubles from retryMin to
// retryMax, so that a Source that fails at once does not spin.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 5 * time.Second
)

func (r *sourceResolver) run(ctx context.Context) {
	defer r.wg.Done()
	delay := retryMin
	for {
		nodes, err := r.w.Next()
		if errors.Is(err, ErrWatcherStopped) || ctx.Err() != nil {
			return
		}
		if err != nil {
			r.cc.ReportError(fmt.Errorf("selector: watch service %q: %w", r.service, err))
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(2*delay, retryMax)
			continue
		}
		delay = retryMin
		r.apply(nodes)
	}
}

func (r *sourceResolver) apply(nodes []Node) {
	if len(nodes) == 0 {
		r.cc.ReportError(fmt.Errorf("selector: service %q has no nodes", r.service))
		return
	}
	if err := ValidateNodes(nodes); err != nil {
		r.cc.ReportError(fmt.Errorf("selector: service %q: %w", r.service, err))
		return
	}
	st := resolver.State{
		Addresses: make([]resolver.Address, len(nodes)),
		Endpoints: make([]resolver.Endpoint, len(nodes)),
	}
	for i, n := range nodes {
		a := addressOf(n)
		st.Addresses[i] = a
		st.Endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{a}}
	}
	_ = r.cc.UpdateState(st) // an error means the balancer rejected the set; it logs why
}

// ResolveNow does nothing: the Source pushes every change.
func (r *sourceResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops the watch and waits for the resolver's goroutine to end.
func (r *sourceResolver) Close() {
	r.cancel()
	r.w.Stop()
	r.wg.Wait()
}
