package retry

import (
	"context"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/selector"
)

// errPanicked is the error of a hedged attempt that panicked (its panic
// goes on in the caller's goroutine).
var errPanicked = status.Error(codes.Internal, "retry: the attempt panicked")

// hedge runs the attempts of one idempotent call side by side: a new attempt
// starts when the others have not answered within the hedge delay, or at
// once when one fails with a retryable error; the first success wins and the
// others are cancelled and waited for. Each attempt produces its own value
// of type T, so attempts never share a reply. It runs a goroutine per
// attempt: hedging is opt-in and concurrent by nature.
func hedge[T any](ctx context.Context, p *Policy, cc *callConfig, attempt func(ctx context.Context) (T, outcome)) (T, error) {
	type result struct {
		n        int
		v        T
		out      outcome
		took     time.Duration
		panicked any // the attempt panicked with this: it goes on in the caller's goroutine
	}
	var (
		zero     T
		results  = make(chan result, cc.maxAttempts) // never blocks a sender
		wg       sync.WaitGroup
		cancels  []context.CancelFunc
		tries    []FailedAttempt
		reason   error
		start    = time.Now()
		launched int
		running  int
		panicked any
	)
	launch := func() {
		launched++
		running++
		n, since := launched, time.Since(start)
		tctx, cancel := context.WithCancel(selector.WithAttempt(ctx, n, since, n > 1))
		cancels = append(cancels, cancel)
		if cc.perAttempt > 0 {
			tctx, cancel = context.WithTimeout(tctx, cc.perAttempt)
			cancels = append(cancels, cancel)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if err := p.limit.acquire(tctx); err != nil {
				if err != ErrFleetFull {
					err = status.FromContextError(err).Err()
				}
				results <- result{n: n, out: outcome{err: err}, took: time.Since(t0)}
				return
			}
			returned := false
			defer func() {
				if !returned { // recovered here, re-panicked by hedge on the caller's goroutine
					p.limit.release(false, false, 0)
					results <- result{n: n, out: outcome{err: errPanicked}, took: time.Since(t0), panicked: recover()}
				}
			}()
			sent := time.Now() // the attempt's own time, not its wait for a slot, feeds the limit's wait bound
			v, out := attempt(tctx)
			returned = true
			p.limit.release(out.overloaded(), out.err == nil, time.Since(sent))
			if cc.perAttempt > 0 {
				out.timedOut = out.timedOut || ownTimeout(tctx, ctx, out.err)
			}
			results <- result{n: n, v: v, out: out, took: time.Since(t0)}
		}()
	}
	stopAll := func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	}
	// collect stops every attempt and lists the ones that had not answered:
	// a call's error names every attempt that started.
	collect := func() {
		stopAll()
		for running > 0 {
			r := <-results // every attempt has sent its result by now
			running--
			if r.panicked != nil && panicked == nil {
				panicked = r.panicked
			}
			tries = append(tries, FailedAttempt{Number: r.n, Hedge: r.n > 1, Node: r.out.node, Err: r.out.err, Duration: r.took})
		}
		slices.SortFunc(tries, func(a, b FailedAttempt) int { return a.Number - b.Number })
		if panicked != nil {
			panic(panicked) // an attempt panicked while the call was ending: on the caller's goroutine
		}
	}
	hedgeNow := func() bool {
		if launched >= cc.maxAttempts {
			reason = ErrAttemptsExhausted
			return false
		}
		if !p.budget.withdraw(time.Now().UnixNano()) {
			reason = ErrBudgetExhausted
			return false
		}
		if h := p.cfg.hooks.OnHedge; h != nil {
			h(ctx, RetryInfo{Method: cc.method, Attempt: launched + 1, Delay: time.Since(start)})
		}
		launch()
		return true
	}

	launch()
	timer := time.NewTimer(cc.hedgeDelay)
	defer timer.Stop()
	for {
		select {
		case r := <-results:
			running--
			if r.panicked != nil {
				collect()
				panic(r.panicked)
			}
			if r.out.err == nil {
				stopAll()
				p.budget.deposit()
				return r.v, nil
			}
			tries = append(tries, FailedAttempt{Number: r.n, Hedge: r.n > 1, Node: r.out.node, Err: r.out.err, Duration: r.took})
			if err := callerEnded(ctx); err != nil {
				collect()
				return zero, p.failure(tries, reason, ctxError{err: err, attempt: r.out.err})
			}
			// The call fails with the error that ended it, not the one of
			// the highest-numbered attempt: a hedge cancelled by the end is
			// not what the caller would have seen.
			if !(r.out.timedOut || p.retryable(r.out.err)) {
				collect()
				return zero, p.failure(tries, nil, r.out.err)
			}
			if !hedgeNow() && running == 0 {
				stopAll()
				var last error // a failed pick says less than an attempt's answer
				if !pickFailed(r.out.err) {
					last = r.out.err
				}
				return zero, p.failure(tries, reason, last)
			}
		case <-timer.C:
			if hedgeNow() {
				timer.Reset(cc.hedgeDelay)
			}
		case <-ctx.Done():
			collect()
			return zero, p.failure(tries, reason, ctxError{err: ctx.Err()})
		}
	}
}
