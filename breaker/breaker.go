package breaker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/outcome"
)

// Breaker holds the circuits of one client (or server): one hystrix command
// per gRPC method, HTTP route or named call, under its namespace. It is safe
// for concurrent use.
type Breaker struct {
	o    options
	cmds sync.Map   // command name -> *command
	mu   sync.Mutex // serializes command creation
}

// command is one circuit and what the breaker keeps beside it.
type command struct {
	name     string
	full     string // NAMESPACE/name, hystrix's name
	cb       *hystrix.CircuitBreaker
	s        Settings
	inflight atomic.Int64
	open     error // the refusals of this command, made once
	rejected error
	sample   sampler
	stats    stats
	// A run of failures opens the circuit here, beside hystrix's error
	// rate (see Settings.ErrorPercent): failures in a row, and until when
	// the circuit refuses (unix ns; 0: not tripped).
	run     atomic.Int64
	tripped atomic.Int64
}

// tripAfter is how many failures in a row open a circuit whatever its
// window's error rate: an outage that begins while the window still holds
// successful calls (at 90% it would open only once they left it, up to 10 s
// later). A brownout does not make such runs: at 50% call failures, one
// chance in 10^12.
func (s Settings) tripAfter() int64 { return 2 * int64(s.VolumeThreshold) }

// admitTripped reports whether a tripped circuit lets this call through:
// once the sleep window has passed, one call (the probe) and none after it
// for another window; always when the circuit is not tripped.
func (c *command) admitTripped(now int64) bool {
	until := c.tripped.Load()
	if until == 0 {
		return true
	}
	return now >= until && c.tripped.CompareAndSwap(until, now+int64(c.s.SleepWindow))
}

// outcome moves the run of failures: a success ends it (and closes a
// tripped circuit), a failure adds to it.
func (c *command) outcome(event int, now int64) {
	switch event {
	case eventSuccess:
		c.run.Store(0)
		c.tripped.Store(0)
	case eventFailure, eventTimeout:
		if c.run.Add(1) >= c.s.tripAfter() {
			c.tripped.CompareAndSwap(0, now+int64(c.s.SleepWindow))
		}
	}
}

// stats counts a command's events for Snapshot: exact totals, and the last
// ten seconds' outcomes in one-second buckets.
type stats struct {
	totals [7]atomic.Int64 // by event
	window [10]struct{ sec, ok, bad atomic.Int64 }
}

func (st *stats) add(event int, now int64) {
	st.totals[event].Add(1)
	if event != eventSuccess && event != eventFailure && event != eventTimeout {
		return
	}
	sec := now / int64(time.Second)
	b := &st.window[sec%10]
	if old := b.sec.Load(); old != sec && b.sec.CompareAndSwap(old, sec) {
		b.ok.Store(0) // a bucket of ten seconds ago: start it afresh
		b.bad.Store(0)
	}
	if event == eventSuccess {
		b.ok.Add(1)
	} else {
		b.bad.Add(1)
	}
}

// CircuitStats is what a Breaker knows of one command's circuit, for
// observers (metrics, a debug page): a snapshot.
type CircuitStats struct {
	Command string
	Open    bool
	// Volume and ErrorPercent are the last 10 s's outcomes (successes,
	// failures, timeouts: every one, not MetricsRate's sample) and the
	// share that failed or timed out.
	Volume       int64
	ErrorPercent int
	// Totals since the command's first call, by event.
	Successes, Failures, Timeouts, ShortCircuits, Rejected, Canceled int64
}

// Snapshot returns the stats of the Breaker's commands, sorted by name.
func (b *Breaker) Snapshot() []CircuitStats {
	var out []CircuitStats
	now := time.Now().Unix()
	b.cmds.Range(func(_, v any) bool {
		c := v.(*command)
		t := &c.stats.totals
		st := CircuitStats{Command: c.name, Open: c.isOpen(),
			Successes: t[eventSuccess].Load(), Failures: t[eventFailure].Load(), Timeouts: t[eventTimeout].Load(),
			ShortCircuits: t[eventShortCircuit].Load(), Rejected: t[eventRejected].Load(),
			Canceled: t[eventCanceled].Load() + t[eventDeadline].Load()}
		var bad int64
		for i := range c.stats.window {
			w := &c.stats.window[i]
			if now-w.sec.Load() < 10 {
				st.Volume += w.ok.Load() + w.bad.Load()
				bad += w.bad.Load()
			}
		}
		if st.Volume > 0 {
			st.ErrorPercent = int((100*bad + st.Volume/2) / st.Volume)
		}
		out = append(out, st)
		return true
	})
	slices.SortFunc(out, func(a, b CircuitStats) int { return strings.Compare(a.Command, b.Command) })
	return out
}

// sampler decides which outcomes reach hystrix's metrics (MetricsRate): a
// token bucket (GCRA) of a second's worth of outcomes, refilled at the
// rate. Below the rate, and in bursts up to a second's worth, every outcome
// goes; past it, about one per 1/rate seconds, so that each stretch of time
// counts about equally and the error rate is its average over time
// whatever the traffic does (a sample in proportion to calls would be
// skewed whenever the rate changes within the window); nothing waits to be
// reported, and no goroutine runs.
type sampler struct {
	slot        int64 // ns per outcome at the rate; 0: every outcome goes
	burst       int64 // ns of credit: a second's worth of outcomes, less one
	unsampled   int64 // ns after a refusal during which every outcome goes
	tat         atomic.Int64
	lastRefusal atomic.Int64
}

func (s *sampler) init(st Settings) {
	if st.MetricsRate > 0 {
		rate := max(int64(st.MetricsRate), int64(st.VolumeThreshold+4)/5)
		s.slot = int64(time.Second) / rate
		s.burst = (rate - 1) * s.slot
	}
	s.unsampled = 2 * int64(st.SleepWindow)
}

// keep reports whether the outcome of a call that ended at now (unix ns)
// goes to the metrics.
func (s *sampler) keep(now int64) bool {
	if s.slot == 0 || now-s.lastRefusal.Load() < s.unsampled {
		return true
	}
	for {
		tat := s.tat.Load()
		next := max(tat, now)
		if next-now > s.burst {
			return false
		}
		if s.tat.CompareAndSwap(tat, next+s.slot) {
			return true
		}
	}
}

// New builds a Breaker. WithNamespace is required.
func New(opts ...Option) (*Breaker, error) {
	o := options{defaults: DefaultSettings(), classify: outcome.Default}
	for _, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("breaker: nil Option")
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.namespace == "" {
		return nil, fmt.Errorf("breaker: WithNamespace is required: hystrix-go's circuits are process-wide, and the namespace keeps two clients from sharing one by accident")
	}
	return &Breaker{o: o}, nil
}

// command returns the command named name, creating and configuring its
// hystrix circuit on first use.
func (b *Breaker) command(name string) (*command, error) {
	if c, ok := b.cmds.Load(name); ok {
		return c.(*command), nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.cmds.Load(name); ok {
		return c.(*command), nil
	}
	s, ok := b.o.commands[name]
	if !ok {
		s = b.o.defaults
	}
	full := b.o.namespace + "/" + strings.TrimPrefix(name, "/")
	hystrix.ConfigureCommand(full, s.hystrix())
	cb, _, err := hystrix.GetCircuit(full)
	if err != nil {
		return nil, fmt.Errorf("breaker: circuit %q: %w", full, err)
	}
	c := &command{name: name, full: full, cb: cb, s: s,
		open:     &RefusedError{Command: name, Err: ErrOpen, RetryAfter: s.SleepWindow},
		rejected: &RefusedError{Command: name, Err: ErrRejected, RetryAfter: time.Second}}
	c.sample.init(s)
	b.cmds.Store(name, c)
	return c, nil
}

// Do runs fn under the circuit of command: at once refused with ErrOpen
// while the circuit is open, or with ErrRejected when MaxConcurrent calls of
// the command run; otherwise fn runs on the caller's goroutine (with a
// context that ends at the command's Timeout, if it has one), and its
// outcome goes to the circuit. With a fallback, a failed call's error is the
// fallback's. If fn panics, the call is released and counted as a failure,
// and the panic goes on.
func (b *Breaker) Do(ctx context.Context, command string, fn func(ctx context.Context) error) error {
	if fn == nil {
		return fmt.Errorf("breaker: Do(%q): nil function", command)
	}
	c, start, err := b.enter(ctx, command)
	if err != nil {
		return err
	}
	tctx, cancel := ctx, context.CancelFunc(nil)
	if t := c.s.Timeout; t > 0 {
		if dl, ok := ctx.Deadline(); !ok || dl.Sub(start) > t {
			// The command's timeout comes first: a timer that cancels the
			// work. (When the caller's deadline comes first, it ends the
			// work and the call is the caller's business, not a timeout.)
			tctx, cancel = context.WithDeadline(ctx, start.Add(t))
		}
	}
	returned := false
	defer func() {
		if !returned { // fn panicked
			if cancel != nil {
				cancel()
			}
			b.abandon(c, start)
		}
	}()
	err = fn(tctx)
	returned = true
	// A call that answered is not a timeout, however late it answered.
	timedOut := err != nil && cancel != nil && ctx.Err() == nil &&
		(tctx.Err() == context.DeadlineExceeded || (status.Code(err) == codes.DeadlineExceeded && time.Since(start) >= c.s.Timeout))
	if cancel != nil {
		cancel()
	}
	return b.exit(ctx, c, start, err, timedOut)
}

// Admitted is a call the breaker let through, in the two-step form (Allow,
// then Done) that streams and wrappers that cannot hand over a function
// use. Finish it exactly once: with Done, or with Abandon when the code it
// guarded panicked.
type Admitted struct {
	b     *Breaker
	c     *command
	ctx   context.Context
	start time.Time
}

// Allow admits a call of command or refuses it at once, as Do does (ErrOpen,
// ErrRejected, or the fallback's error for a refusal). The command's
// Timeout does not apply: the caller bounds the call.
func (b *Breaker) Allow(ctx context.Context, command string) (Admitted, error) {
	c, start, err := b.enter(ctx, command)
	if err != nil {
		return Admitted{}, err
	}
	return Admitted{b: b, c: c, ctx: ctx, start: start}, nil
}

// Done reports the call's outcome (err nil for a success) to the circuit,
// releases its slot, and returns the error to hand on: err, or the
// fallback's for a failure.
func (a Admitted) Done(err error) error { return a.b.exit(a.ctx, a.c, a.start, err, false) }

// Abandon ends a call that has no outcome because its code panicked: it
// releases the slot and counts a failure; no fallback runs.
func (a Admitted) Abandon() { a.b.abandon(a.c, a.start) }

// enter admits a call or refuses it (reporting the refusal, and answering
// with the fallback's error if there is one).
func (b *Breaker) enter(ctx context.Context, name string) (*command, time.Time, error) {
	c, err := b.command(name)
	if err != nil {
		return nil, time.Time{}, err
	}
	start := time.Now()
	if !c.admitTripped(start.UnixNano()) || !c.cb.AllowRequest() {
		return nil, start, b.refuse(ctx, c, start, eventShortCircuit, c.open)
	}
	if c.s.MaxConcurrent > 0 && c.inflight.Add(1) > int64(c.s.MaxConcurrent) {
		c.inflight.Add(-1)
		return nil, start, b.refuse(ctx, c, start, eventRejected, c.rejected)
	}
	return c, start, nil
}

func (b *Breaker) refuse(ctx context.Context, c *command, start time.Time, event int, err error) error {
	if event == eventShortCircuit {
		c.sample.lastRefusal.Store(start.UnixNano())
	}
	fb, err := b.fallback(ctx, c, err)
	b.report(c, event, fb, start, 0)
	return err
}

// release gives back an admitted call's concurrency slot.
func (c *command) release() {
	if c.s.MaxConcurrent > 0 {
		c.inflight.Add(-1)
	}
}

// exit ends an admitted call: it classifies err, reports the event and runs
// the fallback on failure. A call that succeeded is a success even if the
// caller's context has ended since.
func (b *Breaker) exit(ctx context.Context, c *command, start time.Time, err error, timedOut bool) error {
	c.release()
	run := time.Since(start)
	var event int
	switch {
	case err == nil:
		event = eventSuccess
	case ctx.Err() == context.Canceled:
		event = eventCanceled
	case ctx.Err() == context.DeadlineExceeded:
		event = eventDeadline
	case timedOut:
		event = eventTimeout
	default:
		switch b.o.classify(err) {
		case outcome.Success:
			event = eventSuccess
		case outcome.Failure:
			event = eventFailure
		default:
			event = eventCanceled
		}
	}
	fb := fbNone
	if event == eventFailure || event == eventTimeout {
		fb, err = b.fallback(ctx, c, err)
	}
	b.report(c, event, fb, start, run)
	return err
}

// abandon ends an admitted call whose code panicked: its slot is given back
// and it counts as a failure (no fallback runs: there is no answer to
// replace).
func (b *Breaker) abandon(c *command, start time.Time) {
	c.release()
	b.report(c, eventFailure, fbNone, start, time.Since(start))
}

func (b *Breaker) fallback(ctx context.Context, c *command, err error) (int, error) {
	if b.o.fallback == nil {
		return fbNone, err
	}
	if ferr := b.o.fallback(ctx, c.name, err); ferr != nil {
		return fbFailure, ferr
	}
	return fbSuccess, nil
}

// report sends the event to the hooks and, if it says something about the
// dependency (success, failure, timeout), to the circuit (past MetricsRate,
// a sample): the caller's cancellations are neutral, and the breaker's own
// refusals must never keep or open a circuit by themselves (hystrix counts
// both as errors).
func (b *Breaker) report(c *command, event, fb int, start time.Time, run time.Duration) {
	evs := events[event][fb]
	c.stats.add(event, start.Add(run).UnixNano())
	c.outcome(event, start.Add(run).UnixNano())
	if (event == eventSuccess || event == eventFailure || event == eventTimeout) && c.sample.keep(start.Add(run).UnixNano()) {
		if err := c.cb.ReportEvent(evs, start, run); err != nil {
			if h := b.o.hooks.OnDropped; h != nil {
				h(c.name, evs[0])
			}
		}
	}
	if h := b.o.hooks.OnEvent; h != nil {
		for _, e := range evs {
			h(c.name, e)
		}
	}
}

// Events, by hystrix's names, with and without a fallback's outcome: fixed
// slices, so that reporting allocates nothing of ours.
const (
	eventSuccess = iota
	eventFailure
	eventTimeout
	eventShortCircuit
	eventRejected
	eventCanceled
	eventDeadline
)

const (
	fbNone = iota
	fbSuccess
	fbFailure
)

var events = func() (t [7][3][]string) {
	for i, e := range []string{"success", "failure", "timeout", "short-circuit", "rejected", "context_canceled", "context_deadline_exceeded"} {
		t[i] = [3][]string{{e}, {e, "fallback-success"}, {e, "fallback-failure"}}
	}
	return t
}()

// Namespace returns the prefix of the Breaker's hystrix commands.
func (b *Breaker) Namespace() string { return b.o.namespace }

// IsOpen reports whether command's circuit is open now (false for a command
// never used).
func (b *Breaker) IsOpen(name string) bool {
	c, ok := b.cmds.Load(name)
	return ok && c.(*command).isOpen()
}

// isOpen reports whether the circuit refuses calls now: tripped by a run of
// failures, or open by hystrix's error rate.
func (c *command) isOpen() bool { return c.tripped.Load() != 0 || c.cb.IsOpen() }
