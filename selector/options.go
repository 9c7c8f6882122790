package selector

import (
	"fmt"
	"time"

	"github.com/rpcguard/rpcguard/outcome"
)

// Strategy names how a Selector chooses among the eligible nodes.
type Strategy string

// The strategies. Their names are also the values of "strategy" in the
// balancer's service config.
const (
	// Random picks uniformly at random.
	Random Strategy = "random"
	// RoundRobin cycles through the nodes; the position is shared by all
	// calls and goroutines and persists across calls.
	RoundRobin Strategy = "round_robin"
	// PowerOfTwo draws two nodes at random and takes the less loaded one:
	// the lower (attempts in flight + 1) × latency EWMA, so that among equal
	// in-flight counts the lower EWMA wins.
	PowerOfTwo Strategy = "p2c"
)

func (s Strategy) valid() bool { return s == Random || s == RoundRobin || s == PowerOfTwo }

// metadataEquals keeps the nodes whose Metadata[key] is value.
func metadataEquals(key, value string) func(Node) bool {
	return func(n Node) bool { v, ok := n.Metadata[key]; return ok && v == value }
}

// Ejection configures outlier ejection. The zero value disables it; with
// ConsecutiveFailures set, every other field left zero takes its default
// (DefaultEjection's).
type Ejection struct {
	// ConsecutiveFailures ejects a node after this many Failures in a row
	// (see Classifier), if it fails where its peers succeed: a run that
	// their recent failure rate p makes all but impossible (p^run at most
	// one in a million; p ≈ 0: this many). In a brownout, where every node
	// fails alike, none is ejected (at p = 0.3 a run of 12 would be needed,
	// at 0.6 of 28). 0 disables ejection. Default 5.
	ConsecutiveFailures int
	// BaseTime is how long a first ejection lasts; the n-th ejection lasts
	// n × BaseTime, capped at MaxTime. Default 30 s.
	BaseTime time.Duration
	// MaxTime caps an ejection. A node that stayed in for MaxTime since its
	// last return starts again from BaseTime. Default 300 s.
	MaxTime time.Duration
	// MaxPercent is the largest share of the nodes, in percent, that may be
	// ejected at once (rounded down: with 3 nodes and 50%, one), in 1..100.
	// Default 50.
	MaxPercent int
}

// DefaultEjection returns the default ejection settings: 5 consecutive
// failures, 30 s base time, 300 s cap, at most 50% of the nodes.
func DefaultEjection() Ejection {
	return Ejection{ConsecutiveFailures: 5, BaseTime: 30 * time.Second, MaxTime: 300 * time.Second, MaxPercent: 50}
}

func (e Ejection) enabled() bool { return e.ConsecutiveFailures > 0 }

// withDefaults fills the zero fields of an enabled Ejection.
func (e Ejection) withDefaults() Ejection {
	if e == (Ejection{}) {
		return e
	}
	d := DefaultEjection()
	if e.BaseTime == 0 {
		e.BaseTime = d.BaseTime
	}
	if e.MaxTime == 0 {
		e.MaxTime = max(d.MaxTime, e.BaseTime)
	}
	if e.MaxPercent == 0 {
		e.MaxPercent = d.MaxPercent
	}
	return e
}

func (e Ejection) validate() error {
	if e == (Ejection{}) {
		return nil
	}
	switch {
	case e.ConsecutiveFailures < 1:
		return fmt.Errorf("selector: Ejection.ConsecutiveFailures must be at least 1, got %d (use the zero Ejection to disable ejection)", e.ConsecutiveFailures)
	case e.BaseTime <= 0:
		return fmt.Errorf("selector: Ejection.BaseTime must be positive, got %v", e.BaseTime)
	case e.MaxTime < e.BaseTime:
		return fmt.Errorf("selector: Ejection.MaxTime (%v) must not be below BaseTime (%v)", e.MaxTime, e.BaseTime)
	case e.MaxPercent < 1 || e.MaxPercent > 100:
		return fmt.Errorf("selector: Ejection.MaxPercent must be in 1..100, got %d (0 would never eject)", e.MaxPercent)
	}
	return nil
}

// Hooks observe a Selector. Each may be nil. They run on the goroutine that
// caused the event (a pick, a Done, an Update) and must not block.
type Hooks struct {
	// OnEject runs when a node is ejected, with the time it is out for.
	OnEject func(n Node, d time.Duration)
	// OnReturn runs when an ejected node is first seen back (its time is up).
	OnReturn func(n Node)
	// OnUpdate runs once a new node set is in effect: picks that start after
	// it see only these nodes.
	OnUpdate func(nodes []Node)
	// OnDropped runs for each node entry of a Source that is dropped (an
	// invalid node, or an ID or address an earlier entry has), with the
	// service and the reason, where a Source is followed: the resolver of
	// NewResolverBuilder, a Group. It must not block. Default: a warning in
	// gRPC's log.
	OnDropped func(service string, err error)
}

// onDropped is o's OnDropped hook, or the default.
func (o *options) onDropped() func(service string, err error) {
	if o.hooks.OnDropped != nil {
		return o.hooks.OnDropped
	}
	return func(service string, err error) { logger.Warningf("service %q: dropped a node entry: %v", service, err) }
}

type options struct {
	name       string
	onNew      func(*Selector)
	strategy   Strategy
	filters    []func(Node) bool
	ejection   Ejection
	subset     Subset
	reuseTried bool
	classifier outcome.Classifier
	hooks      Hooks
}

// Option configures a Selector (New), the Selectors of a Group, or those
// the gRPC balancer builds for a resolver's clients (NewResolverBuilder).
type Option func(*options) error

// WithStrategy sets the strategy. Default RoundRobin.
func WithStrategy(s Strategy) Option {
	return func(o *options) error {
		if !s.valid() {
			return fmt.Errorf("selector: unknown strategy %q (want %q, %q or %q)", s, Random, RoundRobin, PowerOfTwo)
		}
		o.strategy = s
		return nil
	}
}

// WithFilter keeps only the nodes that pass f; several filters must all
// pass. Filters run when the node set is updated, not on every pick.
func WithFilter(f func(Node) bool) Option {
	return func(o *options) error {
		if f == nil {
			return fmt.Errorf("selector: WithFilter: nil filter")
		}
		o.filters = append(o.filters, f)
		return nil
	}
}

// WithEjection sets outlier ejection (see Ejection). Default: disabled.
func WithEjection(e Ejection) Option {
	return func(o *options) error {
		e = e.withDefaults()
		if err := e.validate(); err != nil {
			return err
		}
		o.ejection = e
		return nil
	}
}

// WithReuseTried makes a pick that finds every node already tried in this
// call reuse the one that failed least recently (a tried node that did not
// fail first), instead of failing with ErrAllTried.
func WithReuseTried() Option {
	return func(o *options) error { o.reuseTried = true; return nil }
}

// WithClassifier sets how attempt errors count against nodes. Default
// DefaultClassifier.
func WithClassifier(c outcome.Classifier) Option {
	return func(o *options) error {
		if c == nil {
			return fmt.Errorf("selector: WithClassifier: nil classifier")
		}
		o.classifier = c
		return nil
	}
}

// WithOnNew runs f with every Selector built with this option, as soon as
// it is built: the way for an observer (metrics, a debug page) to reach the
// Selectors that rpcguard's gRPC balancer builds inside a ClientConn (pass
// it with rpcguard.WithSelectorOptions). It must not block.
func WithOnNew(f func(*Selector)) Option {
	return func(o *options) error {
		if f == nil {
			return fmt.Errorf("selector: WithOnNew: nil function")
		}
		o.onNew = f
		return nil
	}
}

// WithName names the Selector (Name), for observers: the service whose
// nodes it chooses. Default: none.
func WithName(name string) Option {
	return func(o *options) error { o.name = name; return nil }
}

// WithHooks sets the hooks.
func WithHooks(h Hooks) Option {
	return func(o *options) error { o.hooks = h; return nil }
}

func buildOptions(opts []Option) (options, error) {
	o := options{strategy: RoundRobin, classifier: outcome.Default, subset: DefaultSubset()}
	for _, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("selector: nil Option")
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}
