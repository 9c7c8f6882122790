package shed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrOverloaded is the refusal: a gRPC ResourceExhausted status error.
var ErrOverloaded = status.Error(codes.ResourceExhausted, "shed: server overloaded, call refused")

// Defaults of a Limiter.
const (
	// DefaultTarget is the queueing delay a server may keep standing: at
	// least 5 ms (CoDel's), or the calls' service time when that is longer.
	DefaultTarget = 5 * time.Millisecond
	// DefaultInterval is how long the queueing delay must stay above the
	// target before calls are refused: at least 100 ms (CoDel's), or 20
	// service times.
	DefaultInterval = 100 * time.Millisecond
)

// minAbove is how many calls in a row must have waited longer than the
// target (over at least the interval) before the Limiter refuses: two
// calls that each met a pause of the machine, a second apart, are not a
// standing queue.
const minAbove = 8

// Hooks observe a Limiter. Each may be nil and must not block.
type Hooks struct {
	// OnRefuse runs for each refused call with how long it waited.
	OnRefuse func(waited time.Duration)
	// OnShedding runs when the Limiter starts (true) or stops (false)
	// refusing calls.
	OnShedding func(on bool)
}

type options struct {
	target, interval time.Duration
	hooks            Hooks
}

// Option configures a Limiter.
type Option func(*options) error

// WithTarget sets the target queueing delay (default DefaultTarget, raised
// to the calls' service time when that is longer).
func WithTarget(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("shed: WithTarget(%v): want a positive duration", d)
		}
		o.target = d
		return nil
	}
}

// WithInterval sets how long the queueing delay must stay above the target
// before calls are refused (default DefaultInterval, raised to 20 service
// times).
func WithInterval(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("shed: WithInterval(%v): want a positive duration", d)
		}
		o.interval = d
		return nil
	}
}

// WithHooks sets the hooks.
func WithHooks(h Hooks) Option {
	return func(o *options) error { o.hooks = h; return nil }
}

// Limiter refuses the calls a server cannot serve in time (see the package
// doc). It is safe for concurrent use and starts no goroutine.
type Limiter struct {
	opts  options
	epoch time.Time

	inflight atomic.Int64
	admitted atomic.Int64
	refused  atomic.Int64

	firstAbove atomic.Int64  // clock of the first of the calls in a row that waited over the target; 0: none
	above      atomic.Int64  // how many in a row
	dropping   atomic.Bool   // refusing the calls that waited over the target
	lastAbove  atomic.Int64  // clock of the last call that waited over the target
	stopped    atomic.Int64  // clock at which the Limiter last stopped refusing; 0: never
	service    atomic.Uint64 // the calls' service time EWMA, ns as float64 bits
	sched      schedWait
}

// New builds a Limiter.
func New(opts ...Option) (*Limiter, error) {
	o := options{target: DefaultTarget, interval: DefaultInterval}
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("shed: nil Option")
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return &Limiter{opts: o, epoch: time.Now()}, nil
}

// now is the Limiter's monotonic clock in ns; never 0.
func (l *Limiter) now() int64 { return int64(time.Since(l.epoch)) + 1 }

type arrivalKey struct{}

// Arrived returns a context that says the request arrived at t: a
// transport that knows when a request arrived (before it waited for a
// goroutine or a CPU) tells the Limiter so. The gRPC carrier's Tap does
// it for gRPC.
func Arrived(ctx context.Context, t time.Time) context.Context {
	return &arrived{Context: ctx, at: t}
}

// arrived is Arrived's context: one allocation where context.WithValue
// and a boxed time.Time make two.
type arrived struct {
	context.Context
	at time.Time
}

func (c *arrived) Value(key any) any {
	if key == (arrivalKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// Token is an admitted call's slot; Release it exactly once when the call
// ends. The zero Token (a refused call's) releases nothing.
type Token struct {
	l      *Limiter
	start  int64
	sample bool
}

// Acquire admits a call or refuses it with ErrOverloaded. ctx says when
// the call arrived (Arrived); for a call whose arrival is unknown, the
// wait is estimated from the Go scheduler's (see the package doc). It
// never blocks.
func (l *Limiter) Acquire(ctx context.Context) (Token, error) { return l.acquire(ctx, true) }

// AcquireStream is Acquire for a long-lived call: its duration is not the
// server's service time and is not learned.
func (l *Limiter) AcquireStream(ctx context.Context) (Token, error) { return l.acquire(ctx, false) }

func (l *Limiter) acquire(ctx context.Context, sample bool) (Token, error) {
	now := l.now()
	var waited time.Duration
	if a, ok := ctx.Value(arrivalKey{}).(*arrived); ok {
		waited = time.Since(a.at)
	} else {
		waited = l.sched.estimate(now)
	}
	if !l.admit(now, waited) {
		l.refused.Add(1)
		if h := l.opts.hooks.OnRefuse; h != nil {
			h(waited)
		}
		return Token{}, ErrOverloaded
	}
	l.inflight.Add(1)
	l.admitted.Add(1)
	return Token{l: l, start: now, sample: sample}, nil
}

// targets returns the target and the interval, raised by the service time.
func (l *Limiter) targets() (int64, int64) {
	svc := math.Float64frombits(l.service.Load())
	return max(int64(l.opts.target), int64(svc)), max(int64(l.opts.interval), int64(20*svc))
}

// admit decides on a call that waited: CoDel's rule. Calls that waited
// longer than the target, in a row, for at least the interval, mean a
// standing queue: from then on every call that waited longer than the
// target is refused (it is late already, and refusing it costs little),
// until an interval passes with no such call.
func (l *Limiter) admit(now int64, waited time.Duration) bool {
	target, interval := l.targets()
	if int64(waited) <= target {
		l.above.Store(0)
		l.firstAbove.Store(0)
		if l.dropping.Load() && now-l.lastAbove.Load() > interval && l.dropping.CompareAndSwap(true, false) {
			l.stopped.Store(now)
			if h := l.opts.hooks.OnShedding; h != nil {
				h(false)
			}
		}
		return true
	}
	l.lastAbove.Store(now)
	if l.dropping.Load() {
		return false
	}
	n := l.above.Add(1)
	first := l.firstAbove.Load()
	if first == 0 {
		l.firstAbove.CompareAndSwap(0, now)
		first = now
	}
	// Within a second of stopping, minAbove calls in a row are enough:
	// the queue is back, and waiting another interval would let it grow
	// that long.
	recent := l.stopped.Load() != 0 && now-l.stopped.Load() < int64(time.Second)
	if n < minAbove || (!recent && now-first < interval) {
		return true
	}
	if l.dropping.CompareAndSwap(false, true) {
		if h := l.opts.hooks.OnShedding; h != nil {
			h(true)
		}
	}
	return false
}

// Release ends the call: its slot frees and its service time is learned.
func (t Token) Release() {
	l := t.l
	if l == nil {
		return
	}
	l.inflight.Add(-1)
	if !t.sample {
		return
	}
	d := float64(l.now() - t.start)
	for {
		old := l.service.Load()
		f := math.Float64frombits(old)
		nf := d
		if f != 0 {
			nf = f + 0.05*(d-f)
		}
		if l.service.CompareAndSwap(old, math.Float64bits(nf)) {
			return
		}
	}
}

// Stats is a Limiter's state, for observers (metrics, a debug page).
type Stats struct {
	// InFlight is the calls admitted and not released; Admitted and
	// Refused count calls since New.
	InFlight, Admitted, Refused int64
	// Shedding says whether the Limiter refuses the calls that waited
	// longer than Target now.
	Shedding bool
	// Target and Interval are the ones in force (raised by Service, the
	// calls' average service time).
	Target, Interval, Service time.Duration
}

// Snapshot returns the Limiter's stats.
func (l *Limiter) Snapshot() Stats {
	target, interval := l.targets()
	return Stats{InFlight: l.inflight.Load(), Admitted: l.admitted.Load(), Refused: l.refused.Load(),
		Shedding: l.dropping.Load(), Target: time.Duration(target), Interval: time.Duration(interval),
		Service: time.Duration(math.Float64frombits(l.service.Load()))}
}
