// Package metrics shows what rpcguard's engines know, as Prometheus metrics
// and as a live debug page: per node, its state, ejections, attempts,
// in-flight and latency; per circuit, its state, error rate and events; per
// client, its retries, hedges, budget and concurrency limit; per
// registration, its renewals and failures. Start with New, hand the
// Observer what to watch, and mount Handler (the /metrics endpoint) and
// DebugHandler (the page) where you want them: the package opens no port.
//
// The Observer reads the engines' snapshots when scraped or viewed and
// counts retries and hedges through retry's hooks: the engines do not
// import this package, and a program that does not use it pays nothing.
// Labels come only from configuration (the names given here, the commands
// and methods of your own calls, node IDs from your registry), never from
// remote input, so their number stays bounded.
package metrics

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/shed"
)

// Observer watches selectors, breakers, retry policies, load shedders and
// registrars. It
// is safe for concurrent use.
type Observer struct {
	reg     *prometheus.Registry
	retries *prometheus.CounterVec
	hedges  *prometheus.CounterVec

	mu         sync.Mutex
	selectors  map[string]*selector.Selector
	breakers   map[string]*breaker.Breaker
	policies   map[string]*retry.Policy
	shedders   map[string]*shed.Limiter
	registrars []*health.Registrar
}

// New returns an Observer with a Prometheus registry of its own (nothing
// global), holding rpcguard's metrics; add your own collectors to
// Registry if you serve them from Handler too.
func New() *Observer {
	o := &Observer{reg: prometheus.NewRegistry(),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rpcguard_retries_total",
			Help: "Retries a client's retry policy started, by client and method."}, []string{"client", "method"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rpcguard_hedges_total",
			Help: "Hedged attempts a client's retry policy started, by client and method."}, []string{"client", "method"}),
		selectors: map[string]*selector.Selector{}, breakers: map[string]*breaker.Breaker{}, policies: map[string]*retry.Policy{}, shedders: map[string]*shed.Limiter{}}
	o.reg.MustRegister(o.retries, o.hedges, collector{o})
	return o
}

// Registry is the Prometheus registry Handler serves.
func (o *Observer) Registry() *prometheus.Registry { return o.reg }

// Handler serves the metrics in Prometheus's text format (mount it at
// /metrics).
func (o *Observer) Handler() http.Handler {
	return promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{})
}

// Selector is a selector option that has the Observer watch, as service,
// every Selector built with it: pass it to rpcguard.NewClient with
// rpcguard.WithSelectorOptions (or to selector.New, or gomicro.NewSelector,
// whose Selectors are named after each go-micro service: a Selector with a
// name, selector.WithName, is watched under it). The latest Selector built
// for a service is the one shown.
func (o *Observer) Selector(service string) selector.Option {
	return selector.WithOnNew(func(s *selector.Selector) {
		name := service
		if n := s.Name(); n != "" {
			name = n
		}
		o.WatchSelector(name, s)
	})
}

// WatchSelector watches s as service (replacing what was watched as it).
func (o *Observer) WatchSelector(service string, s *selector.Selector) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.selectors[service] = s
}

// WatchBreaker watches b's circuits as client's.
func (o *Observer) WatchBreaker(client string, b *breaker.Breaker) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.breakers[client] = b
}

// WatchPolicy watches p's budget and concurrency limit as client's.
func (o *Observer) WatchPolicy(client string, p *retry.Policy) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.policies[client] = p
}

// WatchShedder watches a server's load shedder (package shed) as server's.
func (o *Observer) WatchShedder(server string, l *shed.Limiter) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.shedders[server] = l
}

// RetryHooks counts client's retries and hedges: pass them to retry.New
// with retry.WithHooks (Chain them with your own).
func (o *Observer) RetryHooks(client string) retry.Hooks {
	return retry.Hooks{
		OnRetry: func(_ context.Context, r retry.RetryInfo) { o.retries.WithLabelValues(client, r.Method).Inc() },
		OnHedge: func(_ context.Context, h retry.RetryInfo) { o.hedges.WithLabelValues(client, h.Method).Inc() },
	}
}

// ChainRetryHooks runs the hooks of each of hs in turn.
func ChainRetryHooks(hs ...retry.Hooks) retry.Hooks {
	return retry.Hooks{
		OnRetry: func(ctx context.Context, r retry.RetryInfo) {
			for _, h := range hs {
				if h.OnRetry != nil {
					h.OnRetry(ctx, r)
				}
			}
		},
		OnHedge: func(ctx context.Context, hi retry.RetryInfo) {
			for _, h := range hs {
				if h.OnHedge != nil {
					h.OnHedge(ctx, hi)
				}
			}
		},
	}
}

// WatchRegistrar watches r's registration.
func (o *Observer) WatchRegistrar(r *health.Registrar) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !slices.Contains(o.registrars, r) {
		o.registrars = append(o.registrars, r)
	}
}

// Unwatch stops watching what was watched as name (a service, or a
// client), and r.
func (o *Observer) Unwatch(name string, rs ...*health.Registrar) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.selectors, name)
	delete(o.breakers, name)
	delete(o.policies, name)
	delete(o.shedders, name)
	o.registrars = slices.DeleteFunc(o.registrars, func(r *health.Registrar) bool { return slices.Contains(rs, r) })
}

// Snapshot is everything the Observer watches, as of now: what the debug
// page shows, and its JSON.
type Snapshot struct {
	Clients       []ClientSnapshot
	Circuits      []CircuitSnapshot
	Policies      []PolicySnapshot
	Shedders      []ShedderSnapshot
	Registrations []health.RegistrarStats
}

// ClientSnapshot is one watched Selector's nodes.
type ClientSnapshot struct {
	Service string
	Nodes   []selector.NodeStats
}

// CircuitSnapshot is one circuit of a watched Breaker.
type CircuitSnapshot struct {
	Client string
	breaker.CircuitStats
}

// PolicySnapshot is one watched retry Policy's load.
type PolicySnapshot struct {
	Client string
	retry.Stats
}

// ShedderSnapshot is one watched server's load shedder.
type ShedderSnapshot struct {
	Server string
	shed.Stats
}

// Snapshot reads every watched engine's snapshot, sorted by name.
func (o *Observer) Snapshot() Snapshot {
	o.mu.Lock()
	sels, brks, pols, regs := maps.Clone(o.selectors), maps.Clone(o.breakers), maps.Clone(o.policies), slices.Clone(o.registrars)
	sheds := maps.Clone(o.shedders)
	o.mu.Unlock()
	var s Snapshot
	for _, name := range slices.Sorted(maps.Keys(sels)) {
		s.Clients = append(s.Clients, ClientSnapshot{Service: name, Nodes: sels[name].Snapshot()})
	}
	for _, name := range slices.Sorted(maps.Keys(brks)) {
		for _, c := range brks[name].Snapshot() {
			s.Circuits = append(s.Circuits, CircuitSnapshot{Client: name, CircuitStats: c})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pols)) {
		s.Policies = append(s.Policies, PolicySnapshot{Client: name, Stats: pols[name].Snapshot()})
	}
	for _, name := range slices.Sorted(maps.Keys(sheds)) {
		s.Shedders = append(s.Shedders, ShedderSnapshot{Server: name, Stats: sheds[name].Snapshot()})
	}
	for _, r := range regs {
		s.Registrations = append(s.Registrations, r.Snapshot())
	}
	slices.SortFunc(s.Registrations, func(a, b health.RegistrarStats) int {
		return strings.Compare(a.Service+"/"+a.Node.ID, b.Service+"/"+b.Node.ID)
	})
	return s
}

// String names the Observer's contents, for logs.
func (s Snapshot) String() string {
	return fmt.Sprintf("%d clients, %d circuits, %d policies, %d shedders, %d registrations", len(s.Clients), len(s.Circuits), len(s.Policies), len(s.Shedders), len(s.Registrations))
}
