package gomicro

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/rpcguard/rpcguard/selector"
)

// SourceOption configures Source.
type SourceOption func(*source) error

// WithResync sets how often the Source lists the service again whatever its
// watch says: go-micro's memory registry expires nodes without a watch
// event, and drops the events a watcher does not take within 10 ms. Default
// 2 s.
func WithResync(d time.Duration) SourceOption {
	return func(s *source) error {
		if d <= 0 {
			return fmt.Errorf("gomicro: WithResync(%v): must be positive", d)
		}
		s.resync = d
		return nil
	}
}

// WithOnError sets what runs when listing or watching the registry fails
// (the last node set stays in use). Default: nothing.
func WithOnError(f func(service string, err error)) SourceOption {
	return func(s *source) error {
		if f == nil {
			return fmt.Errorf("gomicro: WithOnError: nil function")
		}
		s.onError = f
		return nil
	}
}

type source struct {
	reg     registry.Registry
	resync  time.Duration
	onError func(service string, err error)
}

// Source makes a go-micro registry (memory, etcd, consul, ...) an rpcguard
// selector.Source, so that rpcguard's gRPC resolver (rpcguard.NewClient) and
// selector.Follow can take a go-micro service's nodes: every version's nodes,
// the version in each node's metadata ("version"). It lists the service on
// every watch event and every WithResync; the consumer drops bad entries
// one by one and reports them (selector.FilterNodes).
func Source(reg registry.Registry, opts ...SourceOption) (selector.Source, error) {
	if reg == nil {
		return nil, fmt.Errorf("gomicro: Source: nil registry")
	}
	s := &source{reg: reg, resync: 2 * time.Second, onError: func(string, error) {}}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("gomicro: Source: nil SourceOption")
		}
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Watch implements selector.Source.
func (s *source) Watch(ctx context.Context, service string) (selector.Watcher, error) {
	if service == "" || strings.ContainsAny(service, " \t\n") {
		return nil, fmt.Errorf("gomicro: bad service name %q", service)
	}
	nodes, err := s.list(service)
	if err != nil {
		return nil, err
	}
	feed := &selector.Feed{}
	feed.Push(nodes)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.follow(ctx, feed, service, nodes)
	}()
	return watcher{feed.Watch(ctx), func() { cancel(); <-done }}, nil
}

// watcher is the Feed's watcher; Stop also ends the follow goroutine.
type watcher struct {
	selector.Watcher
	stop func()
}

func (w watcher) Stop() { w.Watcher.Stop(); w.stop() }

// list reads the service's nodes: every version's, ordered by ID. A
// service the registry does not know has none.
func (s *source) list(service string) ([]selector.Node, error) {
	svcs, err := s.reg.GetService(service)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gomicro: registry %s: get %q: %w", s.reg, service, err)
	}
	var out []selector.Node
	for _, svc := range svcs {
		for _, n := range svc.Nodes {
			if n == nil {
				continue
			}
			md := maps.Clone(n.Metadata)
			if svc.Version != "" {
				if md == nil {
					md = map[string]string{}
				}
				if _, ok := md["version"]; !ok {
					md["version"] = svc.Version
				}
			}
			out = append(out, selector.Node{ID: n.Id, Addr: n.Address, Metadata: md})
		}
	}
	slices.SortFunc(out, func(a, b selector.Node) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// follow lists again on every watch event and every resync, and pushes
// each set that differs, until ctx ends.
func (s *source) follow(ctx context.Context, feed *selector.Feed, service string, last []selector.Node) {
	events := make(chan struct{}, 1)
	var wg sync.WaitGroup
	if w, err := s.reg.Watch(registry.WatchService(service)); err != nil {
		s.onError(service, fmt.Errorf("gomicro: watch %q: %w (listing every resync only)", service, err))
	} else {
		wg.Add(1)
		go func() { // go-micro's Next blocks: read it here, stop it on ctx's end
			defer wg.Done()
			for {
				if _, err := w.Next(); err != nil {
					return
				}
				select {
				case events <- struct{}{}:
				default: // a list is due already
				}
			}
		}()
		defer func() { w.Stop(); wg.Wait() }()
	}
	tick := time.NewTicker(s.resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-events:
		case <-tick.C:
		}
		nodes, err := s.list(service)
		if err != nil {
			s.onError(service, err)
			continue
		}
		if !slices.EqualFunc(nodes, last, selector.Node.Equal) {
			feed.Push(nodes)
			last = nodes
		}
	}
}
