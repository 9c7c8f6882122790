package gomicro

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

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
	opts  mselector.Options
	sopts []selector.Option
	src   selector.Source

	mu       sync.Mutex
	services map[string]*followed
	picks    sync.Map // *registry.Node (each pick's own) -> selector.Picked
}

type followed struct {
	sel  *selector.Selector
	stop func()
}

// NewSelector returns a Selector on reg, with rpcguard selector options
// (default: power of two choices and selector.DefaultEjection; options
// given replace both, so name them too); each service's rpcguard Selector
// is named after the service (selector.WithName), which is how a
// metrics.Observer's Selector option files it.
func NewSelector(reg registry.Registry, opts ...selector.Option) (*Selector, error) {
	if len(opts) == 0 {
		opts = []selector.Option{selector.WithStrategy(selector.PowerOfTwo), selector.WithEjection(selector.DefaultEjection())}
	}
	if err := selector.CheckOptions(opts...); err != nil {
		return nil, fmt.Errorf("gomicro: NewSelector: %w", err)
	}
	src, err := Source(reg)
	if err != nil {
		return nil, err
	}
	return &Selector{opts: mselector.Options{Registry: reg, Context: context.Background()}, sopts: opts, src: src, services: map[string]*followed{}}, nil
}

// Init applies go-micro selector options; a new registry takes effect for
// the services selected from then on.
func (s *Selector) Init(opts ...mselector.Option) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.opts.Registry
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.Registry != nil && s.opts.Registry != old {
		src, err := Source(s.opts.Registry)
		if err != nil {
			return err
		}
		s.src = src
		for name, f := range s.services {
			f.stop()
			delete(s.services, name)
		}
	}
	return nil
}

// Options returns the go-micro options.
func (s *Selector) Options() mselector.Options { return s.opts }

// Select returns the Next of one call: each node it returns is one the call
// has not tried (mselector.ErrNoneAvailable once all were), picked by the
// service's rpcguard Selector. A SelectOptions.Context that carries a
// per-call record (rpcguard's client wrapper passes each attempt's) makes
// the picks join it, so attempts of one call across several go-micro calls
// avoid each other's nodes. Filters and strategies of go-micro's select
// options do not apply: rpcguard's selector options do.
func (s *Selector) Select(service string, opts ...mselector.SelectOption) (mselector.Next, error) {
	sel, err := s.forService(service)
	if err != nil {
		return nil, err
	}
	if len(sel.Nodes()) == 0 {
		return nil, mselector.ErrNotFound
	}
	var so mselector.SelectOptions
	for _, o := range opts {
		o(&so)
	}
	ctx := so.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if _, ok := selector.AttemptFrom(ctx); !ok {
		ctx = selector.NewRecord(ctx) // the call's record
	}
	return func() (*registry.Node, error) {
		pk, err := sel.Pick(ctx)
		if err != nil {
			if errors.Is(err, selector.ErrNoNodes) {
				return nil, mselector.ErrNotFound
			}
			return nil, mselector.ErrNoneAvailable
		}
		n := &registry.Node{Id: pk.Node.ID, Address: pk.Node.Addr, Metadata: pk.Node.Metadata}
		s.picks.Store(n, pk)
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
	v.(selector.Picked).Finish(err, err == nil || !notSent(err))
}

// notSent reports whether err says the request never left the client.
func notSent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.unsent
}

// Reset forgets what was learned of the service's nodes (ejections,
// latency): its next Select starts afresh.
func (s *Selector) Reset(service string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.services[service]; ok {
		f.stop()
		delete(s.services, service)
	}
}

// Close stops following the registry.
func (s *Selector) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, f := range s.services {
		f.stop()
		delete(s.services, name)
	}
	return nil
}

// String names the selector.
func (s *Selector) String() string { return "rpcguard" }

// forService returns the service's Selector, following the registry from
// the first Select on.
func (s *Selector) forService(service string) (*selector.Selector, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.services[service]; ok {
		return f.sel, nil
	}
	sel, err := selector.New(append(slices.Clone(s.sopts), selector.WithName(service))...)
	if err != nil {
		return nil, err
	}
	stop, err := selector.Follow(context.Background(), s.src, service, sel)
	if err != nil {
		return nil, fmt.Errorf("gomicro: follow %q: %w", service, err)
	}
	s.services[service] = &followed{sel: sel, stop: stop}
	return sel, nil
}

var _ mselector.Selector = (*Selector)(nil)
