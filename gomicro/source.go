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
// selector.Source (selector.Poll) for rpcguard.NewClient, selector.NewGroup
// and NewSelector: every version's nodes, each with its version in its
// metadata ("version"). It lists a service on every event of the
// registry's watch and every interval (every; 0 means 2 s: go-micro's
// memory registry expires nodes without an event, and drops events a
// watcher does not take within 10 ms).
func Source(reg registry.Registry, every time.Duration) (selector.Source, error) {
	if reg == nil {
		return nil, fmt.Errorf("gomicro: Source: nil registry")
	}
	list := func(_ context.Context, service string) ([]selector.Node, error) {
		svcs, err := reg.GetService(service)
		if errors.Is(err, registry.ErrNotFound) {
			return nil, nil // a service the registry does not know has no nodes
		} else if err != nil {
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
	trigger := func(ctx context.Context, service string) (func() error, error) {
		w, err := reg.Watch(registry.WatchService(service))
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, w.Stop)
		return func() error { _, err := w.Next(); return err }, nil
	}
	return selector.Poll(selector.Poller{List: list, Trigger: trigger, Every: every})
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
