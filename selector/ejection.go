package selector

import (
	"math"
	"sync/atomic"
	"time"
)

// Outlier, not brownout: a node is ejected only when it fails where its
// peers succeed. Its run of failures in a row must be one that its peers'
// failure rate (their mean; each a moving average over about its last 50
// outcomes, failRateWeight) makes all but impossible: p^run ≤ outlierOdds.
// A dead node beside healthy peers (p ≈ 0) goes after ConsecutiveFailures
// as before. In a brownout every node fails alike, and ejecting one would
// only take capacity away: at p = 0.3 it takes 12 failures in a row, at
// 0.6 28, runs that a node failing like its peers has about one chance in
// a million of making; in an outage (p ≈ 1) no run is unlikely enough.
const (
	failRateWeight = 0.02
	outlierOdds    = 1e-6
)

// outcome moves ns's failure rate with one outcome: a moving average, and
// the weight its outcomes carry so far, which corrects its start from zero
// (a node with few outcomes has the rate they show, not one near 0).
//
// The hot path of a healthy node writes nothing: a success adds nothing to a
// rate already near 0, and the weight stops moving once it is near 1.
func (ns *nodeState) outcome(failed bool) {
	x := 0.0
	if failed {
		x = 1
	}
	if failed || math.Float64frombits(ns.failRate.Load()) > 1e-6 {
		addTo(&ns.failRate, func(old float64) float64 { return old + failRateWeight*(x-old) })
	}
	if math.Float64frombits(ns.failWeight.Load()) < 1-1e-6 {
		addTo(&ns.failWeight, func(old float64) float64 { return old + failRateWeight*(1-old) })
	}
}

// addTo replaces the float64 in a (as bits) with f of it, atomically.
func addTo(a *atomic.Uint64, f func(float64) float64) {
	for {
		oldBits := a.Load()
		if a.CompareAndSwap(oldBits, math.Float64bits(f(math.Float64frombits(oldBits)))) {
			return
		}
	}
}

// failureRate is ns's recent failure rate; ok is false before its first
// outcome.
func (ns *nodeState) failureRate() (rate float64, ok bool) {
	w := math.Float64frombits(ns.failWeight.Load())
	if w == 0 {
		return 0, false
	}
	return min(math.Float64frombits(ns.failRate.Load())/w, 1), true
}

// outlier reports whether a run of failures in a row is one that peers
// failing at rate p would all but never make.
func outlier(run int64, p float64) bool {
	return p <= 0 || float64(run)*math.Log(p) <= math.Log(outlierOdds)
}

// maybeEject ejects ns after its consecutive failures reached the threshold,
// unless it is already out, no longer in the node set, failing no worse
// than its peers (see outlierOdds), or the share of ejected nodes would pass
// Ejection.MaxPercent.
func (s *Selector) maybeEject(ns *nodeState) {
	e := s.opts.ejection
	s.mu.Lock()
	now := s.now()
	v := s.view.Load()
	member, out, peers, peerRate := false, 0, 0, 0.0
	for _, o := range v.nodes {
		if o == ns {
			member = true
			continue
		}
		if u := o.ejectedUntil.Load(); u != 0 && now < u {
			out++
			continue
		}
		if r, ok := o.failureRate(); ok {
			peers++
			peerRate += r
		}
	}
	if peers > 0 {
		peerRate /= float64(peers)
	}
	if !member || ns.ejectedUntil.Load() != 0 || (out+1)*100 > len(v.nodes)*e.MaxPercent ||
		peers == 0 || !outlier(ns.consecutive.Load(), peerRate) {
		s.mu.Unlock()
		return
	}
	if ns.lastReturn != 0 && now-ns.lastReturn >= int64(e.MaxTime) {
		ns.ejections = 0 // it behaved for a long while: start over
	}
	ns.ejections++
	d := min(time.Duration(ns.ejections)*e.BaseTime, e.MaxTime)
	ns.lastReturn = now + int64(d)
	ns.consecutive.Store(0)
	ns.ejectedUntil.Store(now + int64(d))
	ns.totalEjected.Add(1)
	s.nEjected.Add(1)
	s.mu.Unlock()
	if h := s.opts.hooks.OnEject; h != nil {
		h(ns.node, d)
	}
}

// Unreachable: how long a node that refused a connection stays out of the
// picks, as gRPC's reconnect backoff keeps a subchannel out: 1 s, then 1.6
// times more after each refusal in a row, at most 30 s. It does not count
// towards Ejection.MaxPercent (gRPC's picker never sees such a node); when
// a call has no other node left, it may still go to one.
const (
	unreachableBase = int64(time.Second)
	unreachableMax  = int64(30 * time.Second)
)

// unreachable takes ns out of the picks after an attempt that failed
// without reaching it.
func (s *Selector) unreachable(ns *nodeState) {
	k := ns.refusals.Add(1) - 1
	d := min(float64(unreachableBase)*math.Pow(1.6, float64(min(k, 16))), float64(unreachableMax))
	if ns.unreachableUntil.CompareAndSwap(0, s.now()+int64(d)) {
		s.nUnreach.Add(1)
	}
}

// reachable ends ns's unreachable mark that ran until until, once.
func (s *Selector) reachable(ns *nodeState, until int64) {
	if ns.unreachableUntil.CompareAndSwap(until, 0) {
		s.nUnreach.Add(-1)
	}
}

// returned ends the ejection that ran until until, once, and reports it.
func (s *Selector) returned(ns *nodeState, until int64) {
	if !ns.ejectedUntil.CompareAndSwap(until, 0) {
		return
	}
	s.nEjected.Add(-1)
	if h := s.opts.hooks.OnReturn; h != nil {
		h(ns.node)
	}
}
