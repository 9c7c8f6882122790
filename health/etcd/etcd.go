// Package etcd is a health.Registry (and so a selector.Source) on etcd v3,
// in a package of its own so that users of the in-memory registry do not
// link the etcd client and zap. The TTL is a lease that renewals keep
// alive; watches resume after a disconnect, list again after a compaction
// or when etcd lost its history, and skip malformed entries (Hooks).
package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"

	"github.com/rpcguard/rpcguard/internal/ctxwait"
	"github.com/rpcguard/rpcguard/internal/feed"
	"github.com/rpcguard/rpcguard/internal/registry"
	"github.com/rpcguard/rpcguard/selector"
)

// DefaultPrefix is where New keeps nodes: PREFIX + SERVICE + "/" +
// NODE_ID, whose value is the JSON {"id", "addr", "metadata"} and whose
// lease carries the TTL.
const DefaultPrefix = "/rpcguard/services/"

// Registry is a health.Registry on etcd v3. The TTL is a lease; Register renews it
// with a keep-alive, so a node that stops renewing disappears when its
// lease expires. Watches resume after a disconnect from the last revision
// seen, and list again if etcd compacted past it. Entries that do not parse
// or validate are skipped and reported (Hooks.OnMalformed).
type Registry struct {
	cli    *clientv3.Client
	prefix string
	hooks  Hooks
	resync time.Duration

	mu     sync.Mutex
	leases map[string]leaseOf // key -> the lease this process holds for it
}

type leaseOf struct {
	id  clientv3.LeaseID
	ttl time.Duration
}

// Hooks observe an Etcd registry. Each may be nil.
type Hooks struct {
	// OnMalformed: an entry was left out of the node set (it does not parse
	// or validate).
	OnMalformed  func(key string, err error)
	OnWatchError func(service string, err error)
}

// Option configures New.
type Option func(*Registry) error

// WithPrefix sets the key prefix; it must start and end with '/'.
// Default DefaultPrefix.
func WithPrefix(p string) Option {
	return func(e *Registry) error {
		if len(p) < 2 || p[0] != '/' || p[len(p)-1] != '/' {
			return fmt.Errorf("etcd registry: WithPrefix(%q): want a prefix that starts and ends with '/'", p)
		}
		e.prefix = p
		return nil
	}
}

// WithResync sets how often a watch checks etcd's revision, to see that
// etcd lost its history (a cluster rebuilt from empty data: its watch would
// never send an event) and list again. Default 2 s.
func WithResync(d time.Duration) Option {
	return func(e *Registry) error {
		if d <= 0 {
			return fmt.Errorf("etcd registry: WithResync(%v): must be positive", d)
		}
		e.resync = d
		return nil
	}
}

// WithHooks sets the hooks.
func WithHooks(h Hooks) Option {
	return func(e *Registry) error { e.hooks = h; return nil }
}

// ClientConfig returns a clientv3 configuration for endpoints that
// suits a registry: a 5 s dial timeout, and reconnection that retries at
// most a second apart (gRPC's default backoff grows to two minutes, so a
// client could take far longer than a renewal interval to notice that etcd
// is back after a restart).
func ClientConfig(endpoints ...string) clientv3.Config {
	return clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		})},
	}
}

// New builds a registry on cli, which the caller owns and closes.
func New(cli *clientv3.Client, opts ...Option) (*Registry, error) {
	if cli == nil {
		return nil, fmt.Errorf("etcd registry: New: nil client")
	}
	e := &Registry{cli: cli, prefix: DefaultPrefix, resync: 2 * time.Second, leases: map[string]leaseOf{}}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("etcd registry: New: nil Option")
		}
		if err := o(e); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *Registry) dir(service string) string     { return e.prefix + service + "/" }
func (e *Registry) key(service, id string) string { return e.dir(service) + id }

// Register implements Registry: the first call grants a lease of ttl and
// puts the node on it; later calls keep the lease alive (and put the node
// again if it changed or the lease was lost, e.g. after etcd expired it).
func (e *Registry) Register(ctx context.Context, service string, node selector.Node, ttl time.Duration) error {
	if err := registry.ValidRegistration(service, node, ttl); err != nil {
		return fmt.Errorf("etcd registry: %w", err)
	}
	key := e.key(service, node.ID)
	resp, err := e.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("etcd registry: etcd get %s: %w", key, err)
	}
	var same bool
	if len(resp.Kvs) > 0 {
		if old, err := registry.Decode(resp.Kvs[0].Value); err == nil {
			if old.Addr != node.Addr {
				return fmt.Errorf("etcd registry: service %q: node %q is registered at %q, not %q", service, node.ID, old.Addr, node.Addr)
			}
			same = old.Equal(node)
		}
	}
	e.mu.Lock()
	l, ok := e.leases[key]
	e.mu.Unlock()
	if ok && same && l.ttl == ttl && len(resp.Kvs) > 0 && clientv3.LeaseID(resp.Kvs[0].Lease) == l.id {
		_, err := e.cli.KeepAliveOnce(ctx, l.id)
		if err == nil {
			return nil
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return fmt.Errorf("etcd registry: etcd keep-alive %s: %w", key, err)
		}
		// The lease is gone: grant a new one below.
	}
	grant, err := e.cli.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("etcd registry: etcd grant for %s: %w", key, err)
	}
	if _, err := e.cli.Put(ctx, key, string(registry.Encode(node)), clientv3.WithLease(grant.ID)); err != nil {
		return fmt.Errorf("etcd registry: etcd put %s: %w", key, err)
	}
	e.mu.Lock()
	e.leases[key] = leaseOf{grant.ID, ttl}
	e.mu.Unlock()
	if ok && l.id != grant.ID {
		_, _ = e.cli.Revoke(ctx, l.id) // the old lease, if it still exists
	}
	return nil
}

// Deregister implements Registry: it deletes the key and revokes the lease.
func (e *Registry) Deregister(ctx context.Context, service, nodeID string) error {
	if err := registry.ValidService(service); err != nil {
		return fmt.Errorf("etcd registry: %w", err)
	}
	key := e.key(service, nodeID)
	if _, err := e.cli.Delete(ctx, key); err != nil {
		return fmt.Errorf("etcd registry: etcd delete %s: %w", key, err)
	}
	e.mu.Lock()
	l, ok := e.leases[key]
	delete(e.leases, key)
	e.mu.Unlock()
	if ok {
		_, _ = e.cli.Revoke(ctx, l.id)
	}
	return nil
}

// List implements Registry.
func (e *Registry) List(ctx context.Context, service string) ([]selector.Node, error) {
	if err := registry.ValidService(service); err != nil {
		return nil, fmt.Errorf("etcd registry: %w", err)
	}
	entries, _, err := e.list(ctx, service)
	if err != nil {
		return nil, err
	}
	return e.nodes(service, entries), nil
}

// nodes is the service's node set: every entry, newest first.
func (e *Registry) nodes(_ string, entries map[string]registry.Entry) []selector.Node {
	return registry.Resolve(entries)
}

// list reads the service's entries and the revision they are at.
func (e *Registry) list(ctx context.Context, service string) (map[string]registry.Entry, int64, error) {
	resp, err := e.cli.Get(ctx, e.dir(service), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("etcd registry: etcd list %s: %w", e.dir(service), err)
	}
	entries := make(map[string]registry.Entry, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if n, ok := e.parse(service, string(kv.Key), kv.Value); ok {
			entries[n.ID] = registry.Entry{Node: n, Seq: kv.CreateRevision}
		}
	}
	return entries, resp.Header.Revision, nil
}

// parse decodes an entry, reporting a malformed one.
func (e *Registry) parse(service, key string, value []byte) (selector.Node, bool) {
	n, err := registry.Decode(value)
	if err == nil && n.ID != strings.TrimPrefix(key, e.dir(service)) {
		err = fmt.Errorf("node ID %q does not match its key", n.ID)
	}
	if err != nil {
		if h := e.hooks.OnMalformed; h != nil {
			h(key, err)
		}
		return selector.Node{}, false
	}
	return n, true
}

// Watch implements health.Registry and selector.Source: it lists the
// service, then follows etcd's watch from the next revision.
func (e *Registry) Watch(ctx context.Context, service string) (selector.Watcher, error) {
	if err := registry.ValidService(service); err != nil {
		return nil, fmt.Errorf("etcd registry: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	entries, rev, err := e.list(ctx, service)
	if err != nil {
		cancel()
		return nil, err
	}
	f := &feed.Feed[selector.Node]{}
	f.Push(e.nodes(service, entries))
	go e.follow(ctx, f, service, entries, rev)
	return watcher{f.Watch(ctx), cancel}, nil
}

// watcher is a feed's watcher whose Stop also ends the follow goroutine.
type watcher struct {
	selector.Watcher
	cancel context.CancelFunc
}

func (w watcher) Stop() { w.cancel(); w.Watcher.Stop() }

// follow applies watch events to entries and pushes every new set. The
// client's watch survives disconnects (it resumes from the last revision
// it delivered); when etcd compacted past that, or lost its history (a
// cluster rebuilt from empty data is at a revision below the one the watch
// waits for, and would never send an event), follow lists again. It checks
// etcd's revision every resync to see the second case.
func (e *Registry) follow(ctx context.Context, f *feed.Feed[selector.Node], service string, entries map[string]registry.Entry, rev int64) {
	check := time.NewTicker(e.resync)
	defer check.Stop()
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := e.cli.Watch(wctx, e.dir(service), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		e.apply(ctx, f, service, entries, &rev, ch, check.C)
		cancel()
		if ctx.Err() != nil {
			return
		}
		// The watch ended: list again, then watch from there. Wait a
		// little between attempts.
		for ctx.Err() == nil {
			fresh, r, err := e.list(ctx, service)
			if err == nil {
				entries, rev = fresh, r
				f.Push(e.nodes(service, entries))
				break
			}
			if h := e.hooks.OnWatchError; h != nil {
				h(service, err)
			}
			_ = ctxwait.Sleep(ctx, 200*time.Millisecond)
		}
	}
}

// apply reads one watch until it fails, etcd's revision is seen below rev,
// or the watcher stops.
func (e *Registry) apply(ctx context.Context, f *feed.Feed[selector.Node], service string, entries map[string]registry.Entry, rev *int64, ch clientv3.WatchChan, check <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-check:
			resp, err := e.cli.Get(ctx, e.dir(service), clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err == nil && resp.Header.Revision < *rev {
				if h := e.hooks.OnWatchError; h != nil {
					h(service, fmt.Errorf("etcd registry: etcd is at revision %d, below the %d already seen: it lost its history; listing again", resp.Header.Revision, *rev))
				}
				return
			}
		case resp, ok := <-ch:
			if !ok {
				return
			}
			if err := resp.Err(); err != nil {
				if h := e.hooks.OnWatchError; h != nil {
					h(service, err)
				}
				return
			}
			for _, ev := range resp.Events {
				id := strings.TrimPrefix(string(ev.Kv.Key), e.dir(service))
				if ev.Type == clientv3.EventTypeDelete {
					delete(entries, id)
				} else if n, ok := e.parse(service, string(ev.Kv.Key), ev.Kv.Value); ok {
					entries[id] = registry.Entry{Node: n, Seq: ev.Kv.CreateRevision}
				} else {
					delete(entries, id)
				}
			}
			if resp.Header.Revision > *rev {
				*rev = resp.Header.Revision
			}
			if len(resp.Events) > 0 {
				f.Push(e.nodes(service, entries))
			}
		}
	}
}
