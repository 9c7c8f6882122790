package gomicro

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/selector"
)

// defaultRegisterTTL is the TTL a registration gets when go-micro gives none
// (go-micro's server registers with 90 s by default).
const defaultRegisterTTL = 90 * time.Second

// endpointsKey is the node metadata key under which Registry keeps a
// service's go-micro endpoints (JSON), since rpcguard's registries keep
// nodes; GetService and Watch hand them back as the Service's Endpoints.
const endpointsKey = "micro-endpoints"

// Registry makes an rpcguard registry (health.NewMemory, or health/etcd's,
// with its leases, resumed watches and re-lists) a go-micro
// registry.Registry, with a health.Registrar keeping each registered node
// alive in place of go-micro's own loop: renewals every third of the TTL
// with jitter, backoff when the registry fails, and a check that
// deregisters a failing node once and registers it again only when it
// passes (go-micro's loop deregisters and registers again in the same
// tick).
//
// Register starts a node's Registrar with the registration's TTL
// (micro.RegisterTTL; 90 s without one) and the Registrar
// options given to NewRegistry; go-micro's re-registrations of a node held
// (micro.RegisterInterval) do nothing. Deregister stops the node's Registrar
// (deregistered, then its drain). Give the check to NewRegistry
// (health.WithCheck), not to micro.RegisterCheck. Everything go-micro
// registers is kept: every node (go-micro's HTTP broker registers one per
// subscription, all at one address), its metadata, and the service's
// endpoints (in each node's metadata, under "micro-endpoints"). GetService
// returns one *Service per version; Watch streams create, update and delete
// events for one service (registry.WatchService is required). ListServices
// is not supported: rpcguard's registries are read by service name.
type Registry struct {
	reg  health.Registry
	keep *health.Keeper

	mu   sync.Mutex
	opts registry.Options
}

var _ registry.Registry = (*Registry)(nil)

// NewRegistry returns reg as a go-micro registry whose registrations are
// kept by Registrars built with ropts (health.WithInterval, WithJitter,
// WithCheck, WithDrain, WithRegistrarHooks; a health.WithTTL there wins
// over go-micro's TTL), through a health.Keeper.
func NewRegistry(reg health.Registry, ropts ...health.RegistrarOption) (*Registry, error) {
	keep, err := health.NewKeeper(reg, ropts...)
	if err != nil {
		return nil, fmt.Errorf("gomicro: NewRegistry: %w", err)
	}
	return &Registry{reg: reg, keep: keep, opts: registry.Options{Context: context.Background(), Timeout: 10 * time.Second}}, nil
}

// Init applies go-micro registry options (Timeout bounds each registry call).
func (m *Registry) Init(opts ...registry.Option) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range opts {
		o(&m.opts)
	}
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

// Register starts a Registrar for each node of s that has none (one whose
// address or metadata changed gets a new one); it returns the first
// registration's errors, and the Registrars keep trying in the background.
func (m *Registry) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	if s == nil {
		return errors.New("gomicro: Register: nil service")
	}
	var ro registry.RegisterOptions
	for _, o := range opts {
		o(&ro)
	}
	ttl := ro.TTL
	if ttl <= 0 {
		ttl = defaultRegisterTTL
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
			b, err := json.Marshal(s.Endpoints)
			if err != nil {
				errs = append(errs, fmt.Errorf("gomicro: Register %q: endpoints: %w", s.Name, err))
				continue
			}
			if node.Metadata == nil {
				node.Metadata = map[string]string{}
			}
			node.Metadata[endpointsKey] = string(b)
		}
		if err := m.keep.Hold(ctx, s.Name, node, health.WithTTL(ttl)); err != nil {
			errs = append(errs, fmt.Errorf("gomicro: Register %q: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Deregister stops the Registrars of s's nodes: each node is deregistered,
// then its drain passes (health.WithDrain), so that clients stop sending
// before go-micro's server stops accepting.
func (m *Registry) Deregister(s *registry.Service, opts ...registry.DeregisterOption) error {
	if s == nil {
		return errors.New("gomicro: Deregister: nil service")
	}
	var do registry.DeregisterOptions
	for _, o := range opts {
		o(&do)
	}
	ctx, cancel := m.context(do.Context)
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
	var gopts registry.GetOptions
	for _, o := range opts {
		o(&gopts)
	}
	ctx, cancel := m.context(gopts.Context)
	defer cancel()
	nodes, err := m.reg.List(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, registry.ErrNotFound
	}
	return services(name, nodes), nil
}

// services groups nodes into one *Service per version.
func services(name string, nodes []selector.Node) []*registry.Service {
	byVersion := map[string]*registry.Service{}
	var versions []string
	for _, n := range nodes {
		v := n.Metadata["version"]
		s, ok := byVersion[v]
		if !ok {
			s = &registry.Service{Name: name, Version: v}
			byVersion[v] = s
			versions = append(versions, v)
		}
		addNode(s, n)
	}
	out := make([]*registry.Service, 0, len(versions))
	for _, v := range versions {
		out = append(out, byVersion[v])
	}
	return out
}

// addNode adds n to s as go-micro registered it: its endpoints, kept in
// its metadata, become s's (if s has none yet), and the version rpcguard
// keeps in its metadata is s's Version.
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
	var wo registry.WatchOptions
	for _, o := range opts {
		o(&wo)
	}
	if wo.Service == "" {
		return nil, errors.New("gomicro: Watch: name the service (registry.WatchService): rpcguard's registries are watched by service")
	}
	ctx := wo.Context
	if ctx == nil {
		ctx = context.Background()
	}
	w, err := m.reg.Watch(ctx, wo.Service)
	if err != nil {
		return nil, err
	}
	return &microWatcher{w: w, service: wo.Service}, nil
}

// microWatcher turns the complete node sets of an rpcguard watch into
// go-micro's create, update and delete events (selector.Diff).
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
		}
		if err != nil {
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
