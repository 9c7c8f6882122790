package selector

import (
	"context"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpcguard/rpcguard/outcome"
)

// Selector chooses nodes for attempts and learns from their outcomes. It is
// safe for concurrent use; Update may run while picks do, and picks never
// wait for it: they read an immutable snapshot of the node set.
type Selector struct {
	opts     options
	epoch    time.Time // base of the monotonic clock (now)
	view     atomic.Pointer[view]
	rr       atomic.Uint64 // round-robin position, shared by all calls
	nEjected atomic.Int64  // nodes whose ejection has not been seen to end
	nUnreach atomic.Int64  // nodes marked unreachable, not yet seen back

	mu sync.Mutex // serializes Update and ejection decisions
	// Guarded by mu. keep names the nodes whose state outlives their
	// absence from the view (the gRPC balancer's: nodes in the resolver's
	// set whose connection is not ready); parked holds that state.
	keep   map[string]bool
	parked map[string]*nodeState
	// Guarded by mu: the fleet's order for this client (Subset.ranks; nil:
	// not subset) and how many of its first nodes are the subset.
	rank   map[string]int
	rankIn int
}

// view is one immutable node set; nodes passed the filters. With
// subsetting, the first sub nodes are the client's subset and the others
// follow in the order a pick takes them when none of the subset is
// eligible; without, sub is len(nodes).
type view struct {
	nodes []*nodeState
	sub   int
}

// nodeState is a node and what the selector learned about it. It survives
// updates that keep the node unchanged.
type nodeState struct {
	node         Node
	inflight     atomic.Int64
	ewma         atomic.Uint64 // latency EWMA in ns, as float64 bits
	sampled      atomic.Int64  // Selector clock of the last latency sample; 0: none
	probed       atomic.Int64  // Selector clock of the last probe (see staleAfter)
	consecutive  atomic.Int64  // Failures in a row
	failRate     atomic.Uint64 // moving average of Failure (1) and Success (0) outcomes, as float64 bits
	failWeight   atomic.Uint64 // the weight of the outcomes in failRate so far, in [0, 1), as float64 bits
	ejectedUntil atomic.Int64  // Selector clock; 0 while the node is in
	// A node whose attempt failed unsent (it refused the connection) is out
	// of the picks until then (Selector clock; 0: reachable), as gRPC keeps
	// a subchannel that cannot connect out of its picker; refusals in a
	// row, for the backoff.
	unreachableUntil atomic.Int64
	refusals         atomic.Int64
	successes        atomic.Int64 // attempts the classifier called a success
	failures         atomic.Int64 // and a failure
	totalEjected     atomic.Int64 // ejections since the node joined

	// guarded by Selector.mu
	ejections  int   // ejections so far, the multiplier of BaseTime
	lastReturn int64 // end of the last ejection
}

// New builds a Selector with no nodes; call Update to give it some.
func New(opts ...Option) (*Selector, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	s := &Selector{opts: o, epoch: time.Now()}
	s.view.Store(&view{})
	if o.onNew != nil {
		o.onNew(s)
	}
	return s, nil
}

// Name is the name given with WithName, or "".
func (s *Selector) Name() string { return s.opts.name }

// NodeStats is what a Selector knows of one node, for observers (metrics,
// a debug page): a snapshot, read without stopping picks.
type NodeStats struct {
	Node Node
	// Ejected tells whether the node is out now, and EjectedFor for how
	// much longer; Ejections counts its ejections since it joined.
	Ejected    bool
	EjectedFor time.Duration
	Ejections  int64
	// Unreachable tells whether the node is out of the picks now because
	// it refused a connection (not an ejection: see Ejection).
	Unreachable bool
	// InFlight is how many attempts it has now; Successes and Failures
	// count its attempts' outcomes as the classifier saw them (neutral
	// ones are in neither); Latency is the moving average power of two
	// choices compares (0 before a sample, or with another strategy).
	InFlight            int64
	Successes, Failures int64
	Latency             time.Duration
	// InSubset tells whether the node is in this client's subset (every
	// node is, when the service is not subset: see Subset).
	InSubset bool
}

// Snapshot returns the stats of the current nodes, in the node set's order.
func (s *Selector) Snapshot() []NodeStats {
	v := s.view.Load()
	now := s.now()
	out := make([]NodeStats, len(v.nodes))
	for i, ns := range v.nodes {
		st := NodeStats{Node: ns.node, Ejections: ns.totalEjected.Load(), InFlight: ns.inflight.Load(),
			Successes: ns.successes.Load(), Failures: ns.failures.Load(),
			Latency: time.Duration(math.Float64frombits(ns.ewma.Load())), InSubset: i < v.sub}
		if u := ns.ejectedUntil.Load(); u != 0 && now < u {
			st.Ejected, st.EjectedFor = true, time.Duration(u-now)
		}
		if u := ns.unreachableUntil.Load(); u != 0 && now < u {
			st.Unreachable = true
		}
		out[i] = st
	}
	return out
}

// now reads the Selector's monotonic clock in ns; it is never 0.
func (s *Selector) now() int64 { return int64(time.Since(s.epoch)) + 1 }

// Update replaces the node set. It validates the whole set first (see
// validateNodes) and changes nothing on error. Nodes that stay, unchanged,
// keep their load figures, failure counts and ejection; picks that start
// after Update returns never see a removed node.
func (s *Selector) Update(nodes []Node) error {
	if err := validateNodes(nodes); err != nil {
		return err
	}
	_, kept := s.update(nodes, s.fleet(nodes))
	if h := s.opts.hooks.OnUpdate; h != nil {
		h(kept)
	}
	return nil
}

// update installs nodes (already validated) and returns the new view and
// the nodes it kept. With a fleet, its order becomes the client's (see
// setFleet); nil keeps the last. The caller runs the OnUpdate hook once the
// view is in effect.
func (s *Selector) update(nodes []Node, f *fleetOrder) (*view, []Node) {
	s.mu.Lock()
	if f != nil {
		s.rank, s.rankIn = f.rank, f.in
	}
	old := s.view.Load()
	prev := make(map[string]*nodeState, len(old.nodes))
	for _, ns := range old.nodes {
		prev[ns.node.ID] = ns
	}
	nv := &view{nodes: make([]*nodeState, 0, len(nodes))}
	kept := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		if !s.passes(n) {
			continue
		}
		ns := s.stateOf(n, prev)
		if ns == nil {
			n.Metadata = maps.Clone(n.Metadata)
			ns = &nodeState{node: n}
		}
		nv.nodes = append(nv.nodes, ns)
	}
	nv.sub = len(nv.nodes)
	if s.rank != nil {
		// The subset first, then the rest in the client's order; nodes the
		// fleet did not list (none, unless a caller updates the view with
		// nodes it never gave setFleet) last.
		rank := func(ns *nodeState) int {
			if r, ok := s.rank[ns.node.ID]; ok {
				return r
			}
			return len(s.rank)
		}
		slices.SortStableFunc(nv.nodes, func(a, b *nodeState) int { return rank(a) - rank(b) })
		nv.sub = 0
		for nv.sub < len(nv.nodes) && rank(nv.nodes[nv.sub]) < s.rankIn {
			nv.sub++
		}
	}
	for _, ns := range nv.nodes {
		kept = append(kept, ns.node)
	}
	for id, gone := range prev {
		if s.keep[id] { // still known, not ready now: its state waits
			if s.parked == nil {
				s.parked = map[string]*nodeState{}
			}
			s.parked[id] = gone
			continue
		}
		s.forget(gone)
	}
	s.view.Store(nv)
	s.mu.Unlock()
	return nv, kept
}

// fleetOrder is a fleet's order for this client (Subset.ranks): each
// node's rank, the first in of them its subset; rank nil: not subset.
type fleetOrder struct {
	order []Node
	rank  map[string]int
	in    int
}

// fleet orders the whole node set the client's subset comes from (see
// Subset). The plain API's fleet is what Update installs; the gRPC
// balancer's is the resolver's set, of which the view holds the connected
// nodes (setFleet).
func (s *Selector) fleet(nodes []Node) *fleetOrder {
	if !s.opts.subset.applies(len(nodes)) {
		return &fleetOrder{} // filters only remove nodes: still too few
	}
	var passed []Node
	for _, n := range nodes {
		if s.passes(n) {
			passed = append(passed, n)
		}
	}
	order, in := s.opts.subset.ranks(passed)
	f := &fleetOrder{order: order, in: in}
	if order != nil {
		f.rank = make(map[string]int, len(order))
		for i, n := range order {
			f.rank[n.ID] = i
		}
	}
	return f
}

// setFleet makes nodes the fleet of the views that follow, and returns it.
func (s *Selector) setFleet(nodes []Node) *fleetOrder {
	f := s.fleet(nodes)
	s.mu.Lock()
	s.rank, s.rankIn = f.rank, f.in
	s.mu.Unlock()
	return f
}

// stateOf takes n's state out of prev or the parked states, if the node is
// the same in every field; a node that changed starts afresh. s.mu is held.
func (s *Selector) stateOf(n Node, prev map[string]*nodeState) *nodeState {
	var ns *nodeState
	if p, ok := prev[n.ID]; ok {
		delete(prev, n.ID)
		ns = p
	} else if p, ok := s.parked[n.ID]; ok {
		delete(s.parked, n.ID)
		ns = p
	}
	if ns != nil && !ns.node.Equal(n) {
		s.forget(ns)
		return nil
	}
	return ns
}

// forget ends the ejection of a node whose state is dropped, and its
// unreachable mark. s.mu is held.
func (s *Selector) forget(ns *nodeState) {
	if until := ns.ejectedUntil.Load(); until != 0 && ns.ejectedUntil.CompareAndSwap(until, 0) {
		s.nEjected.Add(-1)
	}
	if until := ns.unreachableUntil.Load(); until != 0 && ns.unreachableUntil.CompareAndSwap(until, 0) {
		s.nUnreach.Add(-1)
	}
}

// retain sets the nodes whose state (ejection and its escalation, latency,
// failures) outlives their absence from the view: the gRPC balancer keeps
// the state of every node in the resolver's set, so that a connection that
// cycles (a server's MaxConnectionAge) does not make the selector forget an
// ejected node. Parked states of other nodes are dropped.
func (s *Selector) retain(ids map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keep = ids
	for id, ns := range s.parked {
		if !ids[id] {
			delete(s.parked, id)
			s.forget(ns)
		}
	}
}

func (s *Selector) passes(n Node) bool {
	for _, f := range s.opts.filters {
		if !f(n) {
			return false
		}
	}
	return true
}

// Nodes returns the current node set (after filters).
func (s *Selector) Nodes() []Node {
	v := s.view.Load()
	out := make([]Node, len(v.nodes))
	for i, ns := range v.nodes {
		out[i] = ns.node
	}
	return out
}

// Picked is the node a pick chose for one attempt. Report the attempt's
// outcome with Done exactly once.
type Picked struct {
	// Node is the chosen node. Treat its Metadata as read-only.
	Node Node

	s     *Selector
	ns    *nodeState
	c     *Record
	slot  *Attempt // c's Attempt for this pick; nil when c is
	start int64    // Selector clock at the pick; 0 when latency is not tracked
	added bool     // the pick added Node to c
}

// Pick chooses a node for one attempt of the call ctx belongs to. It avoids
// nodes the call's record (NewRecord) already holds for this Selector and
// records the chosen one there. It fails with ctx's error if ctx is done,
// ErrNoNodes if no node is available, and ErrAllTried if every available
// node was tried (unless WithReuseTried). It does not block.
func (s *Selector) Pick(ctx context.Context) (Picked, error) {
	p, _, err := s.pick(ctx, s.view.Load())
	return p, err
}

// Done reports the attempt's result, exactly once per Picked: err is
// classified (WithClassifier) and its latency measured from the pick. sent
// says whether the request may have reached the node (true when unsure);
// false (a connection refused, nothing written) is recorded in the call's
// record, where a retry engine reads that even a call that is not
// idempotent may go again.
func (p Picked) Done(err error, sent bool) {
	if p.ns == nil {
		return // the zero Picked of a failed pick
	}
	p.report(p.s.opts.classifier(err), true, sent)
}

// report feeds an outcome back. used is false for a pick that was never
// used for an attempt: it is taken back from the call record and counts
// for nothing. sent says whether the attempt may have reached the node.
func (p Picked) report(o outcome.Outcome, used, sent bool) {
	if p.ns == nil {
		return
	}
	p.ns.inflight.Add(-1)
	s := p.s
	if p.c != nil {
		p.c.mu.Lock()
		if !used {
			if p.added {
				p.c.unmark(s, p.Node.ID)
			}
			p.slot.Picked = false
		} else {
			p.slot.Done, p.slot.Sent = true, sent
			if p.slot.Expired {
				o = outcome.Failure // the engine's own timeout ended it, whatever the transport says
			}
		}
		p.c.mu.Unlock()
	}
	if !used {
		return
	}
	if o == outcome.Neutral {
		return
	}
	var now int64
	if p.start != 0 {
		now = s.now()
		p.ns.observe(float64(now-p.start), o == outcome.Failure, now)
	}
	p.ns.outcome(o == outcome.Failure)
	if o == outcome.Success {
		p.ns.successes.Add(1)
		p.ns.consecutive.Store(0)
		p.ns.refusals.Store(0)
		return
	}
	p.ns.failures.Add(1)
	if !sent {
		s.unreachable(p.ns)
	}
	if p.c != nil {
		if now == 0 {
			now = s.now()
		}
		p.c.mu.Lock()
		p.c.failed(s, p.Node.ID, now)
		p.c.mu.Unlock()
	}
	if e := s.opts.ejection; e.enabled() && p.ns.consecutive.Add(1) >= int64(e.ConsecutiveFailures) {
		s.maybeEject(p.ns)
	}
}
