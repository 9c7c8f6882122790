package selector

import (
	"context"
	"sync"
	"time"
)

// Call is the per-call record: the nodes one logical call (all its attempts,
// retries and hedges) has tried. It travels in the call's context; every
// pick made with that context avoids the nodes the record holds for the same
// Selector. It is safe for concurrent use (hedged attempts pick at once).
type Call struct {
	mu    sync.Mutex
	tried []tried
	buf   [3]tried // backs tried for the usual few attempts: no allocation
	cur   Attempt  // the attempt in progress, when attempts run one at a time

	lastOwner *Selector // the selector of the last pick, and its node count
	lastSize  int
}

// Attempt is what is known of one attempt of a call. A retry engine sets
// Number, Hedge and Delay when it starts the attempt (Call.StartAttempt,
// WithAttempt); the pick fills in the rest. Wrappers that run per attempt
// (tracing, logging) read it with AttemptFrom.
type Attempt struct {
	Number int           // 1 for the first attempt; 0 when no retry engine numbered it
	Hedge  bool          // a hedged attempt, running beside others
	Delay  time.Duration // how long the engine waited before starting it

	Picked bool // a selector picked Node for it
	Node   Node
	Done   bool // its outcome was reported
	// Sent: the attempt may have reached the node. The gRPC balancer knows
	// (gRPC reports whether any byte was sent); the plain API assumes true.
	Sent bool
}

// attemptScope gives one of several concurrent attempts (hedges) its own
// Attempt while it shares the call's record.
type attemptScope struct {
	c *Call
	a Attempt
}

type tried struct {
	owner    *Selector // a record may span calls to several services
	node     Node
	failedAt int64 // when it last failed (Selector clock); 0: it has not
	seq      int   // order of first pick, for ties
}

type callKey struct{}

// NewCall returns a context that carries a fresh, empty Call record. Give
// every attempt of one logical call a context derived from it; start a new
// one for the next logical call. Retry engines do this for you.
func NewCall(ctx context.Context) context.Context {
	return new(CallContext).Init(ctx)
}

// CallContext is a context that carries a fresh Call record: what NewCall
// returns, as a type that an engine can embed in its own per-call state so
// that the record costs no allocation of its own. It keeps its parent's Done
// channel, so contexts derived from it propagate cancellation without a
// goroutine. Its zero value is not usable: call Init.
type CallContext struct {
	context.Context
	call Call
}

// Init makes c a child of parent with an empty record, and returns c.
func (c *CallContext) Init(parent context.Context) *CallContext {
	c.Context = parent
	c.call = Call{}
	c.call.tried = c.call.buf[:0]
	return c
}

// Value returns c's Call record for the record's key, and asks the parent
// for any other key.
func (c *CallContext) Value(key any) any {
	if _, ok := key.(callKey); ok {
		return &c.call
	}
	return c.Context.Value(key)
}

// WithAttempt returns a context for one attempt that runs beside others
// (a hedge): it shares ctx's Call record (NewCall first if there is none)
// but has its own Attempt. Attempts that run one at a time use
// Call.StartAttempt instead, which allocates nothing.
func WithAttempt(ctx context.Context, number int, delay time.Duration, hedge bool) context.Context {
	c := CallFrom(ctx)
	if c == nil {
		ctx = NewCall(ctx)
		c = CallFrom(ctx)
	}
	return context.WithValue(ctx, callKey{}, &attemptScope{c: c, a: Attempt{Number: number, Delay: delay, Hedge: hedge}})
}

// scope returns ctx's Call record and the Attempt a pick with ctx fills in.
func scope(ctx context.Context) (*Call, *Attempt) {
	switch v := ctx.Value(callKey{}).(type) {
	case *Call:
		return v, &v.cur
	case *attemptScope:
		return v.c, &v.a
	}
	return nil, nil
}

// AttemptFrom returns the Attempt of ctx's current attempt (see
// WithAttempt and Call.StartAttempt), and false if ctx carries no record.
func AttemptFrom(ctx context.Context) (Attempt, bool) {
	c, a := scope(ctx)
	if c == nil {
		return Attempt{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return *a, true
}

// StartAttempt begins the call's next attempt when attempts run one at a
// time: the record's current Attempt is reset to number and delay.
func (c *Call) StartAttempt(number int, delay time.Duration) {
	c.mu.Lock()
	c.cur = Attempt{Number: number, Delay: delay}
	c.mu.Unlock()
}

// Untried reports how many nodes of the selector that made the call's last
// pick the call has not tried yet (ejected nodes included), as of that pick;
// known is false before any pick. A retry engine uses it to tell a retry on
// a fresh node (no backoff needed) from one on a node already tried.
func (c *Call) Untried() (n int, known bool) {
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

// EnsureCall returns ctx if it already carries a Call record, and otherwise
// NewCall(ctx). Interceptors that may run inside a retry engine use it so that
// they join the engine's record rather than start their own.
func EnsureCall(ctx context.Context) context.Context {
	if CallFrom(ctx) != nil {
		return ctx
	}
	return NewCall(ctx)
}

// CallFrom returns the Call record ctx carries, or nil.
func CallFrom(ctx context.Context) *Call {
	c, _ := scope(ctx)
	return c
}

// Tried returns the nodes the call tried, in the order they were first
// picked, across every Selector that picked with this record.
func (c *Call) Tried() []Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Node, len(c.tried))
	for i, t := range c.tried {
		out[i] = t.node
	}
	return out
}

// Len returns how many distinct nodes the call tried.
func (c *Call) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.tried)
}

// The methods below run with c.mu held by the pick or done that calls them.

func (c *Call) index(s *Selector, id string) int {
	for i := range c.tried {
		if c.tried[i].owner == s && c.tried[i].node.ID == id {
			return i
		}
	}
	return -1
}

func (c *Call) has(s *Selector, id string) bool { return c.index(s, id) >= 0 }

// mark records a pick of n and reports whether it added a new entry.
func (c *Call) mark(s *Selector, n Node) bool {
	if c.index(s, n.ID) >= 0 {
		return false
	}
	c.tried = append(c.tried, tried{owner: s, node: n, seq: len(c.tried)})
	return true
}

// unmark drops the entry of a pick that was never used (gRPC picks again
// when the chosen connection stopped being ready before the attempt began).
func (c *Call) unmark(s *Selector, id string) {
	if i := c.index(s, id); i >= 0 {
		c.tried = append(c.tried[:i], c.tried[i+1:]...)
	}
}

func (c *Call) failed(s *Selector, id string, at int64) {
	if i := c.index(s, id); i >= 0 {
		c.tried[i].failedAt = at
	}
}

// leastRecentlyFailed returns the ID of the tried node of s, among those ok
// accepts, that failed least recently (one that never failed comes first),
// or "" if there is none.
func (c *Call) leastRecentlyFailed(s *Selector, ok func(id string) bool) string {
	best := -1
	for i := range c.tried {
		t := &c.tried[i]
		if t.owner != s || !ok(t.node.ID) {
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
	return c.tried[best].node.ID
}
