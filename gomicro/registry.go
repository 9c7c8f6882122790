package gomicro

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/selector"
)

// endpointsKey is the node metadata key under which Registry keeps a
// service's go-micro endpoints (JSON): rpcguard's registries keep nodes.
const endpointsKey = "micro-endpoints"

// Registry is an rpcguard registry (health.NewMemory, health/etcd's) as a
// go-micro registry.Registry whose registered nodes a health.Keeper keeps
// alive in place of go-micro's loop: renewals every third of the TTL with
// jitter, backoff when the registry fails, a check (health.WithCheck, not
// micro.RegisterCheck) that deregisters a failing node once and registers
// it again only when it passes. Register starts a node's Registrar with
// the registration's TTL (micro.RegisterTTL; 90 s without one), and
// go-micro's re-registrations of a node held do nothing; Deregister stops
// it (deregistered, then its drain). Every node go-micro registers is kept
// with its metadata and the service's endpoints (in each node's metadata
// under "micro-endpoints"; go-micro's HTTP broker registers a node per
// subscription, all at one address). GetService returns a *Service per
// version; Watch needs registry.WatchService; ListServices is not
// supported (rpcguard's registries are read by service name).
type Registry struct {
	reg  health.Registry
	keep *health.Keeper

	mu   sync.Mutex
	opts registry.Options
}

var _ registry.Registry = (*Registry)(nil)

// NewRegistry returns reg as a go-micro registry whose registrations are
// kept by Registrars built with ropts (health.WithInterval, WithJitter,
// WithCheck, WithDrain, WithRegistrarHooks; a WithTTL there wins over
// go-micro's TTL).
func NewRegistry(reg health.Registry, ropts ...health.RegistrarOption) (*Registry, error) {
	keep, err := health.NewKeeper(reg, ropts...)
	if err != nil {
		return nil, fmt.Errorf("gomicro: NewRegistry: %w", err)
	}
	return &Registry{reg: reg, keep: keep, opts: registry.Options{Context: context.Background(), Timeout: 10 * time.Second}}, nil
}

// Init applies go-micro registry options (Timeout bounds each call).
func (m *Registry) Init(opts ...registry.Option) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	apply(&m.opts, opts)
	return nil
}

// Options returns the go-micro registry options.
func (m *Registry) Options() registry.Options {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.opts
}

// String names the registry.
func (m *Registry) String() string { return "rpcguard" }

// apply applies go-micro's functional options to o.
func apply[T any, F ~func(*T)](o *T, opts []F) *T {
	for _, f := range opts {
		f(o)
	}
	return o
}

// context bounds one registry call by the registry's timeout.
func (m *Registry) context(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	if t := m.Options().Timeout; t > 0 {
		return context.WithTimeout(ctx, t)
	}
	return context.WithCancel(ctx)
}

// Register holds each node of s (one whose address or metadata changed
// gets a new Registrar) and returns the first registrations' errors; the
// Registrars keep trying in the background.
func (m *Registry) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	if s == nil {
		return errors.New("gomicro: Register: nil service")
	}
	ro := apply(&registry.RegisterOptions{}, opts)
	if ro.TTL <= 0 {
		ro.TTL = 90 * time.Second // go-micro's server's default
	}
	eps, err := json.Marshal(s.Endpoints)
	if err != nil {
		return fmt.Errorf("gomicro: Register %q: endpoints: %w", s.Name, err)
	}
	ctx, cancel := m.context(ro.Context)
	defer cancel()
	var errs []error
	for _, n := range s.Nodes {
		if n == nil {
			errs = append(errs, fmt.Errorf("gomicro: Register %q: nil node", s.Name))
			continue
		}
		node := rpcguardNode(s.Version, n, true)
		if len(s.Endpoints) > 0 {
			if node.Metadata == nil {
				node.Metadata = map[string]string{}
			}
			node.Metadata[endpointsKey] = string(eps)
		}
		if err := m.keep.Hold(ctx, s.Name, node, health.WithTTL(ro.TTL)); err != nil {
			errs = append(errs, fmt.Errorf("gomicro: Register %q: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Deregister stops the Registrars of s's nodes: each is deregistered, then
// its drain passes (health.WithDrain), so that clients stop sending before
// go-micro's server stops accepting.
func (m *Registry) Deregister(s *registry.Service, opts ...registry.DeregisterOption) error {
	if s == nil {
		return errors.New("gomicro: Deregister: nil service")
	}
	ctx, cancel := m.context(apply(&registry.DeregisterOptions{}, opts).Context)
	defer cancel()
	var errs []error
	for _, n := range s.Nodes {
		if n != nil {
			errs = append(errs, m.keep.Release(ctx, s.Name, n.Id))
		}
	}
	return errors.Join(errs...)
}

// Close stops every Registrar still running (their nodes deregistered).
func (m *Registry) Close() error {
	ctx, cancel := m.context(context.Background())
	defer cancel()
	return m.keep.Close(ctx)
}

func (m *Registry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	ctx, cancel := m.context(apply(&registry.GetOptions{}, opts).Context)
	defer cancel()
	nodes, err := m.reg.List(ctx, name)
	if err != nil || len(nodes) == 0 {
		return nil, cmp.Or(err, registry.ErrNotFound)
	}
	var out []*registry.Service // one per version, in the order first seen
	for _, n := range nodes {
		i := slices.IndexFunc(out, func(s *registry.Service) bool { return s.Version == n.Metadata["version"] })
		if i < 0 {
			out = append(out, &registry.Service{Name: name, Version: n.Metadata["version"]})
			i = len(out) - 1
		}
		addNode(out[i], n)
	}
	return out, nil
}

// addNode adds n to s as go-micro registered it: its endpoints, kept in
// its metadata, become s's (if s has none yet), and its version is s's.
func addNode(s *registry.Service, n selector.Node) {
	md := maps.Clone(n.Metadata)
	if v, ok := md["version"]; ok && v == s.Version {
		delete(md, "version")
	}
	if eps, ok := md[endpointsKey]; ok {
		delete(md, endpointsKey)
		if s.Endpoints == nil {
			_ = json.Unmarshal([]byte(eps), &s.Endpoints) // a malformed entry has no endpoints
		}
	}
	s.Nodes = append(s.Nodes, &registry.Node{Id: n.ID, Address: n.Addr, Metadata: md})
}

func (m *Registry) ListServices(...registry.ListOption) ([]*registry.Service, error) {
	return nil, errors.New("gomicro: ListServices: rpcguard's registries are read by service name (GetService)")
}

func (m *Registry) Watch(opts ...registry.WatchOption) (registry.Watcher, error) {
	wo := apply(&registry.WatchOptions{}, opts)
	if wo.Service == "" {
		return nil, errors.New("gomicro: Watch: name the service (registry.WatchService): rpcguard's registries are watched by service")
	}
	w, err := m.reg.Watch(cmp.Or(wo.Context, context.Background()), wo.Service)
	if err != nil {
		return nil, err
	}
	return &microWatcher{w: w, service: wo.Service}, nil
}

// microWatcher turns the node sets of an rpcguard watch into go-micro's
// create, update and delete events (selector.Diff).
type microWatcher struct {
	w       selector.Watcher
	service string
	last    []selector.Node
	pending []*registry.Result
}

func (mw *microWatcher) Next() (*registry.Result, error) {
	for len(mw.pending) == 0 {
		nodes, err := mw.w.Next()
		if errors.Is(err, selector.ErrClosed) {
			return nil, registry.ErrWatcherStopped
		} else if err != nil {
			return nil, err
		}
		added, changed, removed := selector.Diff(mw.last, nodes)
		for i, ns := range [][]selector.Node{added, changed, removed} {
			for _, n := range ns {
				s := &registry.Service{Name: mw.service, Version: n.Metadata["version"]}
				addNode(s, n)
				mw.pending = append(mw.pending, &registry.Result{Action: [...]string{"create", "update", "delete"}[i], Service: s})
			}
		}
		mw.last = nodes
	}
	r := mw.pending[0]
	mw.pending = mw.pending[1:]
	return r, nil
}

func (mw *microWatcher) Stop() { mw.w.Stop() }
