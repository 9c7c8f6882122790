package selector

import (
	"context"
	"math"
	"math/rand/v2"
	"time"

	"github.com/rpcguard/rpcguard/outcome"
)

// ewmaWeight is the weight of a new latency sample in a node's EWMA: about
// the last 20 samples count, so that one sample the client delayed itself
// (a loaded client's scheduling delay, a GC pause) moves the average little
// (with 0.3, one sample in ten 8 ms late swung three equal nodes' shares by
// ±14% of a 5 s window; with 0.1, ±9%). A node that turns slow is shunned
// at once all the same: its calls stay in flight, and load counts them.
const ewmaWeight = 0.1

// staleAfter is how long what power of two choices learned of a node's
// latency stays true without a new sample. A node that was slow is not
// picked, so its EWMA would never come down: once its last sample is this
// old, one pick probes it, and that sample replaces the EWMA (Finagle and
// Linkerd decay theirs over about 10 s). A node still slow costs one slow
// call per staleAfter; one that recovered is back at once.
const staleAfter = int64(5 * time.Second)

// pick chooses from v and returns the Picked and its index in v.nodes.
func (s *Selector) pick(ctx context.Context, v *view) (Picked, int, error) {
	if err := ctx.Err(); err != nil {
		return Picked{}, -1, err
	}
	n := len(v.nodes)
	if n == 0 {
		return Picked{}, -1, ErrNoNodes
	}
	c, slot := scope(ctx)
	e := eligibility{s: s, c: c}
	if s.nEjected.Load() > 0 || s.nUnreach.Load() > 0 {
		e.now = s.now()
	}
	if s.opts.strategy == PowerOfTwo {
		e.clock = s.now()
	}
	if e.c != nil {
		e.c.mu.Lock()
		defer e.c.mu.Unlock()
	}
	i := e.choose(v.nodes[:v.sub])
	if i < 0 && v.sub < n {
		// No eligible node in the client's subset: one outside it.
		if i = e.choose(v.nodes[v.sub:]); i >= 0 {
			i += v.sub
		}
	}
	if i < 0 && s.nUnreach.Load() > 0 {
		// No reachable node left for this call: try the unreachable ones
		// too rather than refuse it (an attempt to a node that still
		// refuses fails fast and is never sent).
		e.anyReach = true
		i = e.choose(v.nodes)
	}
	if i < 0 {
		var err error
		if i, err = e.fallback(v); err != nil {
			return Picked{}, -1, err
		}
	}
	ns := v.nodes[i]
	ns.inflight.Add(1)
	p := Picked{Node: ns.node, s: s, ns: ns, c: e.c, slot: slot}
	if e.c != nil {
		p.added = e.c.mark(slot, s, &ns.node, n) // a pointer: no copy into the interface; node states are immutable
	}
	if s.opts.strategy == PowerOfTwo {
		p.start = e.clock
	}
	if check, ok := ctx.Value(pickCheckKey{}).(func(Node) error); ok {
		if err := check(ns.node); err != nil {
			if e.c != nil {
				e.c.mu.Unlock() // report takes it; the deferred Unlock must find it held
				p.report(outcome.Failure, true, false)
				e.c.mu.Lock()
			} else {
				p.report(outcome.Failure, true, false)
			}
			return Picked{}, -1, err
		}
	}
	return p, i, nil
}

type pickCheckKey struct{}

// WithPickCheck returns a context whose picks run check on the node they
// chose. An error fails the pick as if the node had refused the connection:
// the node counts as tried by the call and as failed (ejection), the attempt
// as never sent (so even a call that is not idempotent is retried
// elsewhere), and the pick returns the error. Fault injection uses it to
// fault the node a call is really sent to; check must not block.
func WithPickCheck(ctx context.Context, check func(Node) error) context.Context {
	return context.WithValue(ctx, pickCheckKey{}, check)
}

// eligibility decides which nodes one pick may take. c.mu is held.
type eligibility struct {
	s     *Selector
	c     *Record // nil: the call keeps no record
	now   int64   // 0: no node is ejected or unreachable, skip the check
	clock int64   // the Selector clock, for power of two choices
	// anyReach: pick unreachable nodes too (none of the others is eligible)
	anyReach bool
}

// in reports whether ns is neither ejected nor unreachable, returning it
// from either once its time is up.
func (e *eligibility) in(ns *nodeState) bool {
	if e.now == 0 {
		return true
	}
	if until := ns.unreachableUntil.Load(); until != 0 && !e.anyReach {
		if e.now < until {
			return false
		}
		e.s.reachable(ns, until)
	}
	until := ns.ejectedUntil.Load()
	if until == 0 {
		return true
	}
	if e.now < until {
		return false
	}
	e.s.returned(ns, until)
	return true
}

func (e *eligibility) ok(ns *nodeState) bool {
	return e.in(ns) && (e.c == nil || !e.c.has(e.s, ns.node.ID))
}

// scan returns the first eligible node at or after start, wrapping, or -1.
func (e *eligibility) scan(nodes []*nodeState, start int) int {
	n := len(nodes)
	for k := 0; k < n; k++ {
		i := start + k
		if i >= n {
			i -= n
		}
		if e.ok(nodes[i]) {
			return i
		}
	}
	return -1
}

// twoChoices draws two distinct nodes and keeps the less loaded eligible one.
func (e *eligibility) twoChoices(nodes []*nodeState) int {
	n := len(nodes)
	if n == 1 {
		return e.scan(nodes, 0)
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := nodes[i], nodes[j]
	okA, okB := e.ok(a), e.ok(b)
	switch {
	case okA && okB:
		if e.probe(a) {
			return i
		}
		if e.probe(b) || e.prefer(b, a) {
			return j
		}
		return i
	case okA:
		return i
	case okB:
		return j
	}
	return e.scan(nodes, i)
}

// probe reports whether this pick should take ns to refresh a stale latency
// (see staleAfter), and claims the probe: one pick per staleAfter probes a
// node, not every caller at once.
func (e *eligibility) probe(ns *nodeState) bool {
	last := ns.sampled.Load()
	if last == 0 || e.clock-last <= staleAfter {
		return false // never sampled (prefer favours it) or fresh
	}
	p := ns.probed.Load()
	return e.clock-p > staleAfter && ns.probed.CompareAndSwap(p, e.clock)
}

// clearlyWorse is the load ratio from which prefer never takes the worse
// node: what a client's own delay does to an average of about 20 samples
// stays below it, while a slow node's faded average, once a call to it is
// in flight, doubles past it (so a node that fades back into the picks
// gets one call, not one from every caller until that call returns).
const clearlyWorse = 4

// prefer reports whether this pick should take a over b. Load is the
// expected wait: (attempts in flight + 1) × latency EWMA, as in Finagle's and
// Linkerd's least-loaded balancers. A node without a latency sample yet is
// compared on in-flight counts alone (and wins a tie, so that it gets its
// first sample). A load clearlyWorse than the other's never wins; below
// that, a wins with probability lb²/(la²+lb²): loads that differ by what a
// loaded client's own scheduling delay adds to its samples (1.2×: 41%,
// 1.5×: 31%) share the picks nearly evenly, while a node that is worse
// loses most comparisons (2×: 20%, 3×: 10%). Always taking the lesser
// load, the worst of three equal nodes got no pick at all until its
// average faded, and on a loaded client a recovered node's share swung
// from 8% to 40% of a 5 s window.
func (e *eligibility) prefer(a, b *nodeState) bool {
	ia, ib := a.inflight.Load(), b.inflight.Load()
	ea, eb := e.latency(a), e.latency(b)
	if ea == 0 || eb == 0 {
		if ia != ib {
			return ia < ib
		}
		return ea < eb
	}
	la := float64(ia+1) * math.Float64frombits(ea)
	lb := float64(ib+1) * math.Float64frombits(eb)
	switch {
	case la >= clearlyWorse*lb:
		return false
	case lb >= clearlyWorse*la:
		return true
	}
	la, lb = la*la, lb*lb
	return rand.Float64()*(la+lb) < lb
}

// choose picks an eligible node of nodes by the strategy, and returns its
// index, or -1.
func (e *eligibility) choose(nodes []*nodeState) int {
	if len(nodes) == 0 {
		return -1
	}
	switch e.s.opts.strategy {
	case RoundRobin:
		return e.scan(nodes, int((e.s.rr.Add(1)-1)%uint64(len(nodes))))
	case Random:
		return e.scan(nodes, rand.IntN(len(nodes)))
	}
	return e.twoChoices(nodes)
}

// fallback runs when no node is eligible: it tells ErrNoNodes from
// ErrAllTried, or reuses the tried node that failed least recently.
func (e *eligibility) fallback(v *view) (int, error) {
	if e.c == nil {
		return -1, ErrNoNodes
	}
	anyIn := false
	for _, ns := range v.nodes {
		if e.in(ns) {
			anyIn = true
			break
		}
	}
	if !anyIn {
		return -1, ErrNoNodes
	}
	if !e.s.opts.reuseTried {
		return -1, ErrAllTried
	}
	id := e.c.leastRecentlyFailed(e.s, func(id string) bool {
		for _, ns := range v.nodes {
			if ns.node.ID == id {
				return e.in(ns)
			}
		}
		return false
	})
	for i, ns := range v.nodes {
		if ns.node.ID == id {
			return i, nil
		}
	}
	return -1, ErrAllTried // unreachable: some node is in, and all were tried
}

// observe folds a latency sample (ns) taken at now into the node's EWMA. A
// failure counts as at least four times the current EWMA, so that a node
// failing fast does not look like the fastest node. A sample that follows
// none for staleAfter replaces the EWMA: what it said is out of date.
func (ns *nodeState) observe(sample float64, failed bool, now int64) {
	gap := now - ns.sampled.Swap(now)
	stale := gap > staleAfter
	w := ewmaWeight // a sample after a gap weighs more, as the average faded (decayTau)
	if float64(gap) > decayTau/20 {
		w = max(w, 1-math.Exp(-float64(gap)/decayTau))
	}
	addTo(&ns.ewma, func(old float64) float64 {
		x := sample
		if failed && !stale {
			x = math.Max(x, 4*old)
		}
		if old == 0 || stale {
			return x
		}
		return old + w*(x-old)
	})
}

// decayTau is how fast what a node's samples said fades without a new one:
// in a comparison its latency counts e^(−age/decayTau) of itself, and a
// sample after a gap weighs 1 − e^(−gap/decayTau) (at least ewmaWeight).
// A loaded client's samples carry its own scheduling delay; a healthy node
// that drew an unlucky run of them loses most comparisons (prefer) and
// gets few new samples: fading, it is back within a second or two, and the
// sample it then gets says what it is now. A node that is really slow (200
// times the others' latency) fades into the range where it wins now and
// then after about 2 s (at 1,000 picks a second), and that slow call
// replaces its faded average: one slow call per 2 s or so (the stale probe
// alone cost one per 5 s), the price of a healthy node never staying out
// for long.
const decayTau = float64(time.Second)

// latency is ns's latency for a comparison: its moving average, faded by
// the age of its last sample (decayTau).
func (e *eligibility) latency(ns *nodeState) uint64 {
	bits := ns.ewma.Load()
	age := float64(e.clock - ns.sampled.Load())
	if bits == 0 || age < decayTau/20 { // fresh: nothing to fade (and no math.Exp)
		return bits
	}
	return math.Float64bits(math.Float64frombits(bits) * math.Exp(-age/decayTau))
}
