package retry

import "sync/atomic"

// budget implements Budget as a token bucket, lock-free: balances are in
// thousandths of a token. A check and its withdrawal are one CAS, so the
// budget is exact under contention.
type budget struct {
	earn int64 // per successful call
	rate int64 // per second, whatever happens
	cap  int64
	bal  atomic.Int64
	last atomic.Int64 // unix nanoseconds of the last refill
}

const milli = 1000

func newBudget(b *Budget, now int64) *budget {
	if b == nil {
		return nil
	}
	nb := &budget{earn: int64(b.Ratio * milli), rate: int64(b.MinPerSecond) * milli,
		cap: max(int64(b.MinPerSecond)*milli, int64(10*b.Ratio*milli))}
	nb.bal.Store(nb.cap) // a new client may retry its first failures
	nb.last.Store(now)
	return nb
}

// add credits d, up to the cap.
func (b *budget) add(d int64) {
	for {
		v := b.bal.Load()
		nv := min(v+d, b.cap)
		if nv <= v || b.bal.CompareAndSwap(v, nv) {
			return
		}
	}
}

// deposit credits a call that succeeded.
func (b *budget) deposit() {
	if b != nil {
		b.add(b.earn)
	}
}

// withdraw reports whether a retry (or hedge) may run now, and charges it.
// now is in unix nanoseconds.
func (b *budget) withdraw(now int64) bool {
	if b == nil {
		return true
	}
	if last := b.last.Load(); now > last {
		if d := (now - last) * b.rate / 1e9; d > 0 && b.last.CompareAndSwap(last, now) {
			b.add(d)
		}
	}
	for {
		v := b.bal.Load()
		if v < milli {
			return false
		}
		if b.bal.CompareAndSwap(v, v-milli) {
			return true
		}
	}
}
