package retry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// limiter is a client-side adaptive concurrency limit on attempts, in the
// manner of Netflix's concurrency-limits (AIMD): it is off (no limit, no
// queue, an atomic counter) until a server answers ResourceExhausted, the
// signal that the fleet is full. Then the limit becomes 90% of the attempts
// in flight, less one for each further refusal of the same burst (within
// calmWindow), grows by one for every limit's worth of successes, and drops
// by 10% again at the next refusal after calmWindow. Attempts past
// the limit wait in FIFO order, within their caller's deadline, instead of
// being refused by the servers and retried at once (which starves the
// callers that wait and multiplies attempts). After quiet of quietAfter with
// no refusal, the limit is off again.
type limiter struct {
	inflight atomic.Int64
	limited  atomic.Bool // fast-path check; set and cleared under mu

	mu         sync.Mutex
	limit      float64
	waiters    []chan struct{} // FIFO
	lastDrop   time.Time
	lastSignal time.Time
}

const (
	calmWindow = 20 * time.Millisecond // one decrease per burst of refusals
	quietAfter = 5 * time.Second
)

// acquire takes a slot for an attempt, waiting for one while the limit is
// on; it fails only with ctx's error.
func (l *limiter) acquire(ctx context.Context) error {
	if l == nil {
		return nil
	}
	if !l.limited.Load() {
		l.inflight.Add(1)
		return nil
	}
	l.mu.Lock()
	if !l.limited.Load() || (len(l.waiters) == 0 && float64(l.inflight.Load()) < l.limit) {
		l.inflight.Add(1)
		l.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()
	select {
	case <-ch: // the releaser counted us in
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		for i, w := range l.waiters {
			if w == ch {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				l.mu.Unlock()
				return ctx.Err()
			}
		}
		l.mu.Unlock()
		l.release(false, false) // handed a slot as ctx ended: give it on
		return ctx.Err()
	}
}

// release gives an attempt's slot back; overloaded says the server refused
// it with ResourceExhausted, ok that it succeeded.
func (l *limiter) release(overloaded, ok bool) {
	if l == nil {
		return
	}
	if !overloaded && !l.limited.Load() {
		l.inflight.Add(-1)
		return
	}
	l.mu.Lock()
	now := time.Now()
	in := float64(l.inflight.Add(-1) + 1) // with this attempt
	switch {
	case overloaded:
		l.lastSignal = now
		if now.Sub(l.lastDrop) >= calmWindow {
			base := in
			if l.limited.Load() {
				base = min(base, l.limit)
			}
			l.limit = max(1, 0.9*base)
			l.lastDrop = now
			l.limited.Store(true)
		} else {
			// The same burst: every further refusal is one attempt more
			// than the fleet takes.
			l.limit = max(1, l.limit-1)
		}
	case l.limited.Load() && now.Sub(l.lastSignal) >= quietAfter:
		l.limited.Store(false) // the overload is over
	case ok && l.limited.Load() && in >= l.limit/2:
		l.limit += 1 / l.limit
	}
	for len(l.waiters) > 0 && (!l.limited.Load() || float64(l.inflight.Load()) < l.limit) {
		ch := l.waiters[0]
		l.waiters = l.waiters[1:]
		l.inflight.Add(1)
		close(ch)
	}
	l.mu.Unlock()
}
