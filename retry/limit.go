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
// in flight, grows by one for every limit's worth of successes, and drops
// by 10% again at the next refusal of an attempt that started after that
// decrease (one decrease per round of attempts). Attempts past
// the limit wait (in order, newest first under overload: see release), within their caller's deadline, instead of
// being refused by the servers and retried at once (which starves the
// callers that wait and multiplies attempts); but none waits longer than
// maxWaitRounds attempts' time (the average answered attempt under the
// limit, at least minWait; firstWait before the first answer): a queue that does not move faster than that is one the
// fleet cannot serve, and calls that kept waiting would grow it until
// every call waits to its deadline (open-loop arrivals at 2× what a
// shedding server serves: answered calls' p50 0.6 s of a 1 s deadline).
// Such an attempt fails with ErrFleetFull. After quiet of quietAfter with
// no refusal, the limit is off again.
type limiter struct {
	inflight atomic.Int64
	limited  atomic.Bool // fast-path check; set and cleared under mu

	mu         sync.Mutex
	limit      float64
	waiters    []chan struct{} // attempts waiting for a slot, in arrival order
	lastDrop   time.Time
	lastSignal time.Time
	avg        time.Duration // an attempt's duration under the limit, refusals aside, averaged
	lastFull   time.Time     // when a wait last ran out (ErrFleetFull)
}

const (
	maxWaitRounds = 8                      // attempts' time an attempt may wait for a slot
	minWait       = 10 * time.Millisecond  // the shortest such wait
	firstWait     = 100 * time.Millisecond // the wait before any attempt under the limit ended
	quietAfter    = 5 * time.Second
)

// acquire takes a slot for an attempt, waiting for one while the limit is
// on; it fails with ctx's error, or ErrFleetFull when no slot came in
// maxWaitRounds attempts' time.
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
	bound := firstWait
	if l.avg > 0 {
		bound = max(minWait, maxWaitRounds*l.avg)
	}
	wait := time.NewTimer(bound)
	l.mu.Unlock()
	defer wait.Stop()
	var err error
	select {
	case <-ch: // the releaser counted us in
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-wait.C:
		err = ErrFleetFull
	}
	l.mu.Lock()
	if err == ErrFleetFull {
		l.lastFull = time.Now()
	}
	for i, w := range l.waiters {
		if w == ch {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			l.mu.Unlock()
			return err
		}
	}
	l.mu.Unlock()
	l.release(false, false, 0) // handed a slot as we gave up: give it on
	return err
}

// release gives an attempt's slot back; overloaded says the server refused
// it with ResourceExhausted, ok that it succeeded, took how long it ran (0:
// not an attempt's).
func (l *limiter) release(overloaded, ok bool, took time.Duration) {
	if l == nil {
		return
	}
	if !overloaded && !l.limited.Load() {
		l.inflight.Add(-1)
		return
	}
	l.mu.Lock()
	now := time.Now()
	switch {
	case took <= 0 || overloaded: // a refusal comes back at once: it says nothing of how long a slot is held
	case l.avg == 0:
		l.avg = took
	default:
		l.avg += (took - l.avg) / 8
	}
	in := float64(l.inflight.Add(-1) + 1) // with this attempt
	switch {
	case overloaded:
		l.lastSignal = now
		// One decrease per round: a refusal of an attempt that started
		// before the last decrease says nothing of the limit set then
		// (a stampede's refusals arrive together, and counting each would
		// take the limit far below what the fleet serves).
		if started := now.Add(-took); !l.limited.Load() || !started.Before(l.lastDrop) {
			base := in
			if l.limited.Load() {
				base = min(base, l.limit)
			}
			l.limit = max(1, 0.9*base)
			l.lastDrop = now
			l.limited.Store(true)
		}
	case l.limited.Load() && now.Sub(l.lastSignal) >= quietAfter:
		l.limited.Store(false) // the overload is over
	case ok && l.limited.Load() && in >= l.limit/2:
		l.limit += 1 / l.limit
	}
	for len(l.waiters) > 0 && (!l.limited.Load() || float64(l.inflight.Load()) < l.limit) {
		// First come, first served, while the queue moves. Once waits ran
		// out (ErrFleetFull) in the last second with more than a round
		// of the limit waiting, more calls come than the fleet serves, and
		// the newest goes first (adaptive LIFO): it has the most time left,
		// and the oldest are the ones the wait bound refuses anyway (served
		// in arrival order, every call then waited nearly the whole bound).
		// A closed loop of callers, whose queue is less than a round, stays
		// in order: there, serving the newest would starve the oldest.
		i := 0
		if float64(len(l.waiters)) > l.limit && !l.lastFull.IsZero() && now.Sub(l.lastFull) < time.Second {
			i = len(l.waiters) - 1
		}
		ch := l.waiters[i]
		l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
		l.inflight.Add(1)
		close(ch)
	}
	l.mu.Unlock()
}
