// Package record is the per-call record, rpcguard's memory of one logical
// call across its attempts, retries and hedges. It is written in one place
// here; who writes and reads which field:
//
//   - a retry engine (retry.Run, retry.Hedge) creates the record (New,
//     Ensure, or Context.Init for an allocation-free embedding), numbers
//     each attempt before it runs (Record.StartAttempt for one at a time,
//     WithAttempt for a hedge, with its wait and whether it is a hedge), and
//     reads after it which node it went to and whether it was sent
//     (AttemptFrom), and how many nodes are left (Record.Untried);
//   - the selector's pick (selector.Selector.Pick, the gRPC balancer)
//     avoids the nodes the record holds for the same selector, records the
//     one it picks into the attempt, and its Done/Finish marks the attempt
//     done and sent or not, and the node failed;
//   - per-attempt wrappers (tracing's attempt spans) read the attempt
//     (AttemptFrom); call-level ones (the call span) read the nodes tried
//     (Record.Tried).
//
// Users see it through package selector: NewRecord to start a logical call
// by hand, Attempt and AttemptFrom in a per-attempt wrapper. Owners (the
// selector that picked) and nodes are kept as any, so this package needs no
// selector type.
package record

import (
	"context"
	"sync"
	"time"
)

// Record is the nodes one logical call (all its attempts, retries and
// hedges) has tried, and the attempt in progress. It travels in the call's
// context. It is safe for concurrent use (hedged attempts pick at once).
type Record struct {
	mu    sync.Mutex
	tried []tried
	buf   [3]tried // backs tried for the usual few attempts: no allocation
	cur   Attempt  // the attempt in progress, when attempts run one at a time

	lastOwner any // the selector of the last pick, and its node count
	lastSize  int
}

// Attempt is what is known of one attempt of a call. A retry engine sets
// Number, Hedge and Delay when it starts the attempt (Record.StartAttempt,
// WithAttempt); the pick fills in the rest. Wrappers that run per attempt
// (tracing, logging) read it with AttemptFrom.
type Attempt struct {
	Number int           // 1 for the first attempt; 0 when no retry engine numbered it
	Hedge  bool          // a hedged attempt, running beside others
	Delay  time.Duration // how long the engine waited before starting it

	Picked bool // a selector picked Node for it
	Node   any  // a selector.Node
	Done   bool // its outcome was reported
	// Sent: the attempt may have reached the node. The gRPC balancer knows
	// (gRPC reports whether any byte was sent); the plain API assumes true.
	Sent bool
}

// attemptScope gives one of several concurrent attempts (hedges) its own
// Attempt while it shares the call's record.
type attemptScope struct {
	c *Record
	a Attempt
}

type tried struct {
	owner    any // a record may span calls to several services
	id       string
	node     any   // a selector.Node
	failedAt int64 // when it last failed (Selector clock); 0: it has not
	seq      int   // order of first pick, for ties
}

type callKey struct{}

// New returns a context that carries a fresh, empty record. Give
// every attempt of one logical call a context derived from it; start a new
// one for the next logical call. Retry engines do this for you.
func New(ctx context.Context) context.Context {
	return new(Context).Init(ctx)
}

// Context is a context that carries a fresh record: what New
// returns, as a type that an engine can embed in its own per-call state so
// that the record costs no allocation of its own. It keeps its parent's Done
// channel, so contexts derived from it propagate cancellation without a
// goroutine. Its zero value is not usable: call Init.
type Context struct {
	context.Context
	rec Record
}

// Init makes c a child of parent with an empty record, and returns c.
func (c *Context) Init(parent context.Context) *Context {
	c.Context = parent
	c.rec = Record{}
	c.rec.tried = c.rec.buf[:0]
	return c
}

// Value returns c's record for the record's key, and asks the parent
// for any other key.
func (c *Context) Value(key any) any {
	if _, ok := key.(callKey); ok {
		return &c.rec
	}
	return c.Context.Value(key)
}

// WithAttempt returns a context for one attempt that runs beside others
// (a hedge): it shares ctx's record (New first if there is none)
// but has its own Attempt. Attempts that run one at a time use
// Record.StartAttempt instead, which allocates nothing.
func WithAttempt(ctx context.Context, number int, delay time.Duration, hedge bool) context.Context {
	c := From(ctx)
	if c == nil {
		ctx = New(ctx)
		c = From(ctx)
	}
	return context.WithValue(ctx, callKey{}, &attemptScope{c: c, a: Attempt{Number: number, Delay: delay, Hedge: hedge}})
}

// Scope returns ctx's record and the Attempt a pick with ctx fills in.
func Scope(ctx context.Context) (*Record, *Attempt) {
	switch v := ctx.Value(callKey{}).(type) {
	case *Record:
		return v, &v.cur
	case *attemptScope:
		return v.c, &v.a
	}
	return nil, nil
}

// AttemptFrom returns the Attempt of ctx's current attempt (see
// WithAttempt and Record.StartAttempt), and false if ctx carries no record.
func AttemptFrom(ctx context.Context) (Attempt, bool) {
	c, a := Scope(ctx)
	if c == nil {
		return Attempt{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return *a, true
}

// StartAttempt begins the call's next attempt when attempts run one at a
// time: the record's current Attempt is reset to number and delay.
func (c *Record) StartAttempt(number int, delay time.Duration) {
	c.mu.Lock()
	c.cur = Attempt{Number: number, Delay: delay}
	c.mu.Unlock()
}

// Untried reports how many nodes of the selector that made the call's last
// pick the call has not tried yet (ejected nodes included), as of that pick;
// known is false before any pick. A retry engine uses it to tell a retry on
// a fresh node (no backoff needed) from one on a node already tried.
func (c *Record) Untried() (n int, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastOwner == nil {
		return 0, false
	}
	n = c.lastSize
	for i := range c.tried {
		if c.tried[i].owner == c.lastOwner {
			n--
		}
	}
	return max(n, 0), true
}

// Ensure returns ctx if it already carries a record, and otherwise
// New(ctx). Interceptors that may run inside a retry engine use it so that
// they join the engine's record rather than start their own.
func Ensure(ctx context.Context) context.Context {
	if From(ctx) != nil {
		return ctx
	}
	return New(ctx)
}

// From returns the record ctx carries, or nil.
func From(ctx context.Context) *Record {
	c, _ := Scope(ctx)
	return c
}

// Tried returns the nodes the call tried, in the order they were first
// picked, across every Selector that picked with this record.
func (c *Record) Tried() []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]any, len(c.tried))
	for i, t := range c.tried {
		out[i] = t.node
	}
	return out
}

// Len returns how many distinct nodes the call tried.
func (c *Record) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.tried)
}

// Lock and Unlock hold the record while a pick or a Done reads and writes
// it; the methods below run with it held.
func (c *Record) Lock() { c.mu.Lock() }

// Unlock releases the record.
func (c *Record) Unlock() { c.mu.Unlock() }

func (c *Record) index(s any, id string) int {
	for i := range c.tried {
		if c.tried[i].owner == s && c.tried[i].id == id {
			return i
		}
	}
	return -1
}

// Has reports whether the call tried node id of owner s.
func (c *Record) Has(s any, id string) bool { return c.index(s, id) >= 0 }

// Mark records a pick of node n (ID id) by s into the record and the
// current attempt slot, and reports whether it added a new entry; size is
// s's node count, for Untried.
func (c *Record) Mark(slot *Attempt, s any, id string, n any, size int) bool {
	c.lastOwner, c.lastSize = s, size
	*slot = Attempt{Number: slot.Number, Hedge: slot.Hedge, Delay: slot.Delay, Picked: true, Node: n}
	if c.index(s, id) >= 0 {
		return false
	}
	c.tried = append(c.tried, tried{owner: s, id: id, node: n, seq: len(c.tried)})
	return true
}

// Unmark drops the entry of a pick that was never used (gRPC picks again
// when the chosen connection stopped being ready before the attempt began).
func (c *Record) Unmark(s any, id string) {
	if i := c.index(s, id); i >= 0 {
		c.tried = append(c.tried[:i], c.tried[i+1:]...)
	}
}

// Failed records when node id of s failed (s's clock).
func (c *Record) Failed(s any, id string, at int64) {
	if i := c.index(s, id); i >= 0 {
		c.tried[i].failedAt = at
	}
}

// LeastRecentlyFailed returns the ID of the tried node of s, among those ok
// accepts, that failed least recently (one that never failed comes first),
// or "" if there is none.
func (c *Record) LeastRecentlyFailed(s any, ok func(id string) bool) string {
	best := -1
	for i := range c.tried {
		t := &c.tried[i]
		if t.owner != s || !ok(t.id) {
			continue
		}
		if best < 0 || t.failedAt < c.tried[best].failedAt ||
			(t.failedAt == c.tried[best].failedAt && t.seq < c.tried[best].seq) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return c.tried[best].id
}
