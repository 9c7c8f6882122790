package retry

import "sync/atomic"

// budgetWindow is how many one-second slices the ratio is counted over.
const budgetWindow = 10

// budget implements Budget over a ring of one-second slices. Counting is
// lock-free and approximate under contention (a check and its withdrawal
// are not one step; a slice is zeroed by whoever first sees its new second),
// which may let a few retries past the ratio in a burst.
type budget struct {
	ratio  float64
	floor  int64
	slices [budgetWindow]budgetSlice

	floorSec  atomic.Int64 // the second floorUsed counts
	floorUsed atomic.Int64
}

type budgetSlice struct {
	sec     atomic.Int64
	calls   atomic.Int64
	retries atomic.Int64 // retries charged to the ratio
}

func newBudget(b *Budget) *budget {
	if b == nil {
		return nil
	}
	return &budget{ratio: b.Ratio, floor: int64(b.MinPerSecond)}
}

// slot returns the slice of second sec, zeroing a stale one.
func (b *budget) slot(sec int64) *budgetSlice {
	s := &b.slices[sec%budgetWindow]
	if old := s.sec.Load(); old != sec && s.sec.CompareAndSwap(old, sec) {
		s.calls.Store(0)
		s.retries.Store(0)
	}
	return s
}

// deposit counts a call.
func (b *budget) deposit(sec int64) {
	if b != nil {
		b.slot(sec).calls.Add(1)
	}
}

// withdraw reports whether a retry may run now, and charges it.
func (b *budget) withdraw(sec int64) bool {
	if b == nil {
		return true
	}
	var calls, retries int64
	for i := range b.slices {
		s := &b.slices[i]
		if sec-s.sec.Load() < budgetWindow {
			calls += s.calls.Load()
			retries += s.retries.Load()
		}
	}
	if float64(retries+1) <= b.ratio*float64(calls) {
		b.slot(sec).retries.Add(1)
		return true
	}
	if old := b.floorSec.Load(); old != sec && b.floorSec.CompareAndSwap(old, sec) {
		b.floorUsed.Store(0)
	}
	if b.floorUsed.Add(1) <= b.floor {
		return true
	}
	return false
}
