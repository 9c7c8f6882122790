package gomicro

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/rpcguard/rpcguard/selector"
)

// Source makes a go-micro registry (memory, etcd, consul, ...) an rpcguard
// selector.Source (selector.Poll), so that rpcguard's gRPC resolver
// (rpcguard.NewClient), selector.NewGroup and NewSelector can take a go-micro
// service's nodes: every version's nodes, the version in each node's
// metadata ("version"). It lists the service on every event of the
// registry's watch and every interval (every; 0 means 2 s: go-micro's
// memory registry expires nodes without a watch event, and drops the events
// a watcher does not take within 10 ms); the consumer drops bad entries
// one by one and reports them.
func Source(reg registry.Registry, every time.Duration) (selector.Source, error) {
	if reg == nil {
		return nil, fmt.Errorf("gomicro: Source: nil registry")
	}
	list := func(_ context.Context, service string) ([]selector.Node, error) {
		svcs, err := reg.GetService(service)
		if errors.Is(err, registry.ErrNotFound) {
			return nil, nil // a service the registry does not know has no nodes
		}
		if err != nil {
			return nil, fmt.Errorf("gomicro: registry %s: get %q: %w", reg, service, err)
		}
		var out []selector.Node
		for _, svc := range svcs {
			for _, n := range svc.Nodes {
				if n != nil {
					out = append(out, rpcguardNode(svc.Version, n, false))
				}
			}
		}
		return out, nil
	}
	return selector.Poll(selector.Poller{List: list, Trigger: watchTrigger(reg), Every: every})
}

// watchTrigger turns go-micro's blocking watch into the poller's trigger.
func watchTrigger(reg registry.Registry) func(ctx context.Context, service string) (<-chan struct{}, error) {
	return func(ctx context.Context, service string) (<-chan struct{}, error) {
		w, err := reg.Watch(registry.WatchService(service))
		if err != nil {
			return nil, err
		}
		ch := make(chan struct{}, 1)
		context.AfterFunc(ctx, w.Stop)
		go func() {
			defer close(ch)
			for {
				if _, err := w.Next(); err != nil {
					return
				}
				select {
				case ch <- struct{}{}:
				default: // a list is due already
				}
			}
		}()
		return ch, nil
	}
}

// rpcguardNode is a go-micro node as an rpcguard Node, with the service's
// version in its metadata (replacing the node's own "version" if over).
func rpcguardNode(version string, n *registry.Node, over bool) selector.Node {
	md := maps.Clone(n.Metadata)
	if _, has := md["version"]; version != "" && (over || !has) {
		if md == nil {
			md = map[string]string{}
		}
		md["version"] = version
	}
	return selector.Node{ID: n.Id, Addr: n.Address, Metadata: md}
}
