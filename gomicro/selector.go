package gomicro

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	mselector "go-micro.dev/v4/selector"

	"github.com/rpcguard/rpcguard/selector"
)

// Selector is a go-micro selector backed by rpcguard's: a Selector per
// service, fed from the go-micro registry (Source), so that each call's
// attempts go to nodes the call has not tried (a per-call record behind
// every Select), the strategies and outlier ejection apply, and Mark feeds
// the outcome of every attempt back (go-micro's own selector ignores Mark).
// Use it with client.Selector(sel), before client.Registry in the options
// (go-micro's client.Registry re-initializes the selector it finds), and
// Close it.
type Selector struct {
	sopts []selector.Option

	mu     sync.Mutex
	opts   mselector.Options
	group  *selector.Group
	picks  sync.Map // *registry.Node (each pick's own) -> pick
	warned sync.Once
}

// NewSelector returns a Selector on reg, with rpcguard selector options
// (default: power of two choices and selector.DefaultEjection; options
// given replace both, so name them too): a selector.Group on Source(reg),
// each service's rpcguard Selector named after the service, which is how a
// metrics.Observer's Selector option files it.
func NewSelector(reg registry.Registry, opts ...selector.Option) (*Selector, error) {
	if len(opts) == 0 {
		opts = []selector.Option{selector.WithStrategy(selector.PowerOfTwo), selector.WithEjection(selector.DefaultEjection())}
	}
	s := &Selector{sopts: opts, opts: mselector.Options{Registry: reg, Context: context.Background()}}
	var err error
	if s.group, err = s.newGroup(reg); err != nil {
		return nil, fmt.Errorf("gomicro: NewSelector: %w", err)
	}
	return s, nil
}

func (s *Selector) newGroup(reg registry.Registry) (*selector.Group, error) {
	src, err := Source(reg, 0)
	if err != nil {
		return nil, err
	}
	return selector.NewGroup(src, s.sopts...)
}

// Init applies go-micro selector options; a new registry takes effect for
// every service from then on.
func (s *Selector) Init(opts ...mselector.Option) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.opts.Registry
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.Registry == nil || s.opts.Registry == old {
		return nil
	}
	g, err := s.newGroup(s.opts.Registry)
	if err != nil {
		return err
	}
	_ = s.group.Close()
	s.group = g
	return nil
}

// Options returns the go-micro options.
func (s *Selector) Options() mselector.Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts
}

// Select returns the Next of one call: each node it returns is one the call
// has not tried (mselector.ErrNoneAvailable once all were), picked by the
// service's rpcguard Selector. A SelectOptions.Context that carries a
// per-call record (rpcguard's client wrapper passes each attempt's) makes
// the picks join it, so attempts of one call across several go-micro calls
// avoid each other's nodes; its deadline bounds the wait for a service's
// first node set. Filters and strategies of go-micro's select options (the
// roundrobin wrapper's) do not apply, rpcguard's selector options do: the
// first Select given one says so in a warning (go-micro's logger).
func (s *Selector) Select(service string, opts ...mselector.SelectOption) (mselector.Next, error) {
	var so mselector.SelectOptions
	for _, o := range opts {
		o(&so)
	}
	if so.Strategy != nil || len(so.Filters) > 0 {
		s.warned.Do(func() {
			logger.Logf(logger.WarnLevel, "gomicro: Selector: go-micro select strategies and filters (the roundrobin wrapper, "+
				"selector.WithFilter) do not apply; choose rpcguard's with gomicro.WithSelectorOptions or NewSelector's options")
		})
	}
	ctx := so.Context
	if ctx == nil {
		ctx = context.Background()
	}
	s.mu.Lock()
	g := s.group
	s.mu.Unlock()
	sel, err := g.Selector(ctx, service)
	if err != nil {
		return nil, err
	}
	if len(sel.Nodes()) == 0 {
		return nil, mselector.ErrNotFound
	}
	ctx = selector.JoinRecord(ctx) // the call's record
	return func() (*registry.Node, error) {
		pk, err := sel.Pick(ctx)
		if err != nil {
			if errors.Is(err, selector.ErrNoNodes) {
				return nil, mselector.ErrNotFound
			}
			return nil, mselector.ErrNoneAvailable
		}
		n := &registry.Node{Id: pk.Node.ID, Address: pk.Node.Addr, Metadata: pk.Node.Metadata}
		s.picks.Store(n, pick{service, pk})
		return n, nil
	}, nil
}

// Mark reports the outcome of the attempt that went to node (the one Next
// returned): its error, translated (FromMicro), decides success or failure
// and whether it was sent.
func (s *Selector) Mark(_ string, node *registry.Node, err error) {
	v, ok := s.picks.LoadAndDelete(node)
	if !ok {
		return
	}
	err = FromMicro(err)
	var e *Error
	v.(pick).Done(err, !errors.As(err, &e) || !e.unsent)
}

// Reset forgets what was learned of the service's nodes (ejections,
// latency): its next Select starts afresh.
func (s *Selector) Reset(service string) {
	s.mu.Lock()
	g := s.group
	s.mu.Unlock()
	g.Reset(service)
	s.picks.Range(func(k, v any) bool { // picks never marked: forgotten with the service
		if v.(pick).service == service {
			s.picks.Delete(k)
		}
		return true
	})
}

// pick is a node handed out by Next, until Mark reports on it.
type pick struct {
	service string
	selector.Picked
}

// Close stops following the registry; Select fails after it. Picks never
// marked are dropped.
func (s *Selector) Close() error {
	s.mu.Lock()
	g := s.group
	s.mu.Unlock()
	s.picks.Clear()
	return g.Close()
}

// String names the selector.
func (s *Selector) String() string { return "rpcguard" }

var _ mselector.Selector = (*Selector)(nil)
