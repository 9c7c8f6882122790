package selector

import "time"

// maybeEject ejects ns after its consecutive failures reached the threshold,
// unless it is already out, no longer in the node set, or the share of
// ejected nodes would pass Ejection.MaxPercent.
func (s *Selector) maybeEject(ns *nodeState) {
	e := s.opts.ejection
	s.mu.Lock()
	now := s.now()
	v := s.view.Load()
	member, out := false, 0
	for _, o := range v.nodes {
		if o == ns {
			member = true
		}
		if u := o.ejectedUntil.Load(); u != 0 && now < u {
			out++
		}
	}
	if !member || ns.ejectedUntil.Load() != 0 || (out+1)*100 > len(v.nodes)*e.MaxPercent {
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
