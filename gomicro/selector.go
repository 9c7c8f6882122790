package gomicro

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	mselector "go-micro.dev/v4/selector"

	"github.com/rpcguard/rpcguard/outcome"
	"github.com/rpcguard/rpcguard/selector"
)

// Selector is a go-micro selector backed by rpcguard's: a selector.Group
// on the go-micro registry (Source), so that each call's attempts go to
// nodes the call has not tried, the strategies and outlier ejection apply,
// and Mark feeds every attempt's outcome back (go-micro's own selector
// ignores Mark). Use it with client.Selector(sel) before client.Registry
// (which re-initializes the selector it finds), and Close it.
type Selector struct {
	sopts  []selector.Option
	picks  sync.Map // *registry.Node (each pick's own) -> pick
	warned sync.Once

	mu     sync.Mutex
	opts   mselector.Options
	group  *selector.Group
	closed bool
}

// NewSelector returns a Selector on reg with rpcguard selector options
// (default power of two choices and selector.DefaultEjection; options
// given replace both). Each service's rpcguard Selector is named after the
// service, which is how a metrics.Observer files it.
func NewSelector(reg registry.Registry, opts ...selector.Option) (*Selector, error) {
	if len(opts) == 0 {
		opts = []selector.Option{selector.WithStrategy(selector.PowerOfTwo), selector.WithEjection(selector.DefaultEjection())}
	}
	s := &Selector{sopts: opts, opts: mselector.Options{Context: context.Background()}}
	if err := s.Init(mselector.Registry(reg)); err != nil {
		return nil, fmt.Errorf("gomicro: NewSelector: %w", err)
	}
	return s, nil
}

// Init applies go-micro selector options; a new registry takes effect for
// every service from then on. After Close it fails (selector.ErrClosed).
func (s *Selector) Init(opts ...mselector.Option) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return selector.ErrClosed
	}
	old := s.opts.Registry
	if apply(&s.opts, opts); s.group != nil && (s.opts.Registry == nil || s.opts.Registry == old) {
		return nil
	}
	src, err := Source(s.opts.Registry, 0)
	if err != nil {
		return err
	}
	g, err := selector.NewGroup(src, s.sopts...)
	if err != nil {
		return err
	}
	if s.group != nil {
		_ = s.group.Close()
	}
	s.group = g
	return nil
}

// Options returns the go-micro options.
func (s *Selector) Options() mselector.Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts
}

// String names the selector.
func (s *Selector) String() string { return "rpcguard" }

func (s *Selector) grp() *selector.Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.group
}

// Select returns the Next of one call: each node it returns is one the call
// has not tried (mselector.ErrNoneAvailable once all were). A
// SelectOptions.Context with a per-call record (rpcguard's client wrapper
// passes each attempt's) joins it, so that the attempts of one call avoid
// each other's nodes; its deadline bounds the wait for a service's first
// nodes. go-micro's select strategies and filters do not apply (the first
// Select given one warns in go-micro's log); rpcguard's options do.
func (s *Selector) Select(service string, opts ...mselector.SelectOption) (mselector.Next, error) {
	so := apply(&mselector.SelectOptions{Context: context.Background()}, opts)
	if so.Strategy != nil || len(so.Filters) > 0 {
		s.warned.Do(func() {
			logger.Logf(logger.WarnLevel, "gomicro: Selector: go-micro select strategies and filters (the roundrobin wrapper, "+
				"selector.WithFilter) do not apply; choose rpcguard's with gomicro.WithSelectorOptions or NewSelector's options")
		})
	}
	sel, err := s.grp().Selector(so.Context, service)
	if err != nil {
		return nil, err
	}
	if len(sel.Nodes()) == 0 {
		return nil, mselector.ErrNotFound
	}
	ctx := selector.JoinRecord(so.Context)
	return func() (*registry.Node, error) {
		pk, err := sel.Pick(ctx)
		if errors.Is(err, selector.ErrNoNodes) {
			return nil, mselector.ErrNotFound
		} else if err != nil {
			return nil, mselector.ErrNoneAvailable
		}
		n := &registry.Node{Id: pk.Node.ID, Address: pk.Node.Addr, Metadata: pk.Node.Metadata}
		s.picks.Store(n, pick{service, pk})
		return n, nil
	}, nil
}

// pick is a node handed out by Next, until Mark reports on it.
type pick struct {
	service string
	selector.Picked
}

// Mark reports the outcome of the attempt that went to node (as Next
// returned it), read by FromMicro.
func (s *Selector) Mark(_ string, node *registry.Node, err error) {
	if v, ok := s.picks.LoadAndDelete(node); ok {
		var e *outcome.Error
		err = FromMicro(err)
		v.(pick).Done(err, !errors.As(err, &e) || !e.Unsent)
	}
}

// Reset forgets what was learned of the service's nodes (ejections,
// latency) and its picks never marked.
func (s *Selector) Reset(service string) {
	s.grp().Reset(service)
	s.picks.Range(func(k, v any) bool {
		if v.(pick).service == service {
			s.picks.Delete(k)
		}
		return true
	})
}

// Close stops following the registry for good; Select and Init fail
// after it.
func (s *Selector) Close() error {
	s.mu.Lock()
	s.closed = true
	g := s.group
	s.mu.Unlock()
	s.picks.Clear()
	return g.Close()
}

var _ mselector.Selector = (*Selector)(nil)
