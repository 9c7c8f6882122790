package selector

import (
	"context"
	"sync"
	"time"
)

// The per-call record: rpcguard's memory of one logical call across its
// attempts, retries and hedges, and the protocol between the packages that
// share it. Who writes and reads what:
//
//   - a retry engine creates or joins it (NewRecord, JoinRecord, or an
//     embedded RecordContext), numbers each attempt before it runs
//     (Record.StartAttempt one at a time, WithAttempt for a hedge), and
//     reads after it which node it went to and whether it was sent
//     (AttemptFrom), and how many nodes are left (Record.Untried);
//   - a Selector's pick (Pick, the gRPC balancer) avoids the nodes the
//     record holds for the same Selector, records the one it picks into the
//     attempt, and Picked.Done marks the attempt done and sent or
//     not, and the node failed;
//   - per-attempt wrappers (attempt spans, logging) read the attempt
//     (AttemptFrom); call-level ones (the call span) read the nodes tried
//     (Record.Tried).

// Record is the nodes one logical call (all its attempts, retries and
// hedges) has tried, and the attempt in progress. It travels in the call's
// context. It is safe for concurrent use (hedged attempts pick at once).
type Record struct {
	mu    sync.Mutex
	tried []tried
	buf   [3]tried // backs tried for the usual few attempts: no allocation
	cur   Attempt  // the attempt in progress, when attempts run one at a time

	lastOwner *Selector // the Selector of the last pick, and its node count
	lastSize  int
}

// Attempt is what is known of one attempt of a call: its number, wait and
// whether it is a hedge (set by the retry engine before it runs), the node
// a selector picked for it, and, once the attempt's outcome was reported
// (Picked.Done, the gRPC balancer), whether it may have reached
// the node. Per-attempt wrappers (logging, tracing) read it with
// AttemptFrom.
type Attempt struct {
	Number int           // 1 for the first attempt; 0 when no retry engine numbered it
	Hedge  bool          // a hedged attempt, running beside others
	Delay  time.Duration // how long the engine waited before starting it

	Picked bool // a selector picked Node for it
	Node   Node
	Done   bool // its outcome was reported
	// Sent: the attempt may have reached the node. The gRPC balancer knows
	// (gRPC reports whether any byte was sent); Picked.Done is told.
	Sent bool
	// Expired: the retry engine ended the attempt at its own timeout (Expire):
	// the node failed it, whatever error the transport reports.
	Expired bool
}

// attemptScope gives one of several concurrent attempts (hedges) its own
// Attempt while it shares the call's record.
type attemptScope struct {
	c *Record
	a Attempt
}

type tried struct {
	owner    *Selector // a record may span calls to several services
	node     *Node     // the Selector's own copy: node states are immutable
	failedAt int64     // when it last failed (Selector clock); 0: it has not
	seq      int       // order of first pick, for ties
}

type recordKey struct{}

// NewRecord returns a context that carries a fresh, empty record: every
// pick made with it (or a context derived from it) avoids the nodes the
// record holds for the same Selector, and records the one it picks. Give
// every attempt of one logical call a context derived from it, and start a
// new one for the next logical call. Retry engines and rpcguard's stacks do
// this for you.
func NewRecord(ctx context.Context) context.Context {
	return new(RecordContext).Init(ctx)
}

// JoinRecord returns ctx if it already carries a record, and otherwise
// NewRecord(ctx): wrappers that may run inside a retry engine join the
// engine's record rather than start their own.
func JoinRecord(ctx context.Context) context.Context {
	if RecordFrom(ctx) != nil {
		return ctx
	}
	return NewRecord(ctx)
}

// RecordContext is a context that carries a fresh record, what NewRecord
// returns, as a type that an adapter can embed in its own per-call state so
// that the record costs no allocation of its own. It keeps its parent's
// Done channel, so contexts derived from it propagate cancellation without
// a goroutine. Its zero value is not usable: call Init.
type RecordContext struct {
	context.Context
	rec Record
}

// Init makes c a child of parent with an empty record, and returns c.
func (c *RecordContext) Init(parent context.Context) *RecordContext {
	c.Context = parent
	c.rec = Record{}
	c.rec.tried = c.rec.buf[:0]
	return c
}

// Value returns c's record for the record's key, and asks the parent for
// any other key.
func (c *RecordContext) Value(key any) any {
	if _, ok := key.(recordKey); ok {
		return &c.rec
	}
	return c.Context.Value(key)
}

// WithAttempt returns a context for one attempt that runs beside others (a
// hedge): it shares ctx's record (a new one if there is none) but has its
// own Attempt. Attempts that run one at a time use Record.StartAttempt
// instead, which allocates nothing.
func WithAttempt(ctx context.Context, number int, delay time.Duration, hedge bool) context.Context {
	c := RecordFrom(ctx)
	if c == nil {
		ctx = NewRecord(ctx)
		c = RecordFrom(ctx)
	}
	return context.WithValue(ctx, recordKey{}, &attemptScope{c: c, a: Attempt{Number: number, Delay: delay, Hedge: hedge}})
}

// scope returns ctx's record and the Attempt a pick with ctx fills in.
func scope(ctx context.Context) (*Record, *Attempt) {
	switch v := ctx.Value(recordKey{}).(type) {
	case *Record:
		return v, &v.cur
	case *attemptScope:
		return v.c, &v.a
	}
	return nil, nil
}

// RecordFrom returns the record ctx carries, or nil.
func RecordFrom(ctx context.Context) *Record {
	c, _ := scope(ctx)
	return c
}

// AttemptFrom returns the Attempt of ctx's current attempt (see WithAttempt
// and Record.StartAttempt), and false if ctx carries no record.
func AttemptFrom(ctx context.Context) (Attempt, bool) {
	c, a := scope(ctx)
	if c == nil {
		return Attempt{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return *a, true
}

// Expire marks ctx's current attempt as ended by the retry engine's own
// timeout, before the engine cancels it: the node's outcome is then a
// failure (a stream that sent no first message in time is cancelled, and
// gRPC reports that as Canceled, which says nothing about the node).
func Expire(ctx context.Context) {
	c, a := scope(ctx)
	if c == nil {
		return
	}
	c.mu.Lock()
	a.Expired = true
	c.mu.Unlock()
}

// StartAttempt begins the call's next attempt when attempts run one at a
// time: the record's current Attempt is reset to number and delay.
func (c *Record) StartAttempt(number int, delay time.Duration) {
	c.mu.Lock()
	c.cur = Attempt{Number: number, Delay: delay}
	c.mu.Unlock()
}

// Untried reports how many nodes of the Selector that made the call's last
// pick the call has not tried yet (ejected nodes included), as of that
// pick; known is false before any pick. A retry engine uses it to tell a
// retry on a fresh node (no backoff needed) from one on a node already
// tried.
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

// Tried returns the nodes the call tried, in the order they were first
// picked, across every Selector that picked with this record.
func (c *Record) Tried() []Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Node, len(c.tried))
	for i, t := range c.tried {
		out[i] = *t.node
	}
	return out
}

// The methods below are the pick's; they run with c.mu held.

func (c *Record) index(s *Selector, id string) int {
	for i := range c.tried {
		if c.tried[i].owner == s && c.tried[i].node.ID == id {
			return i
		}
	}
	return -1
}

// has reports whether the call tried node id of s.
func (c *Record) has(s *Selector, id string) bool { return c.index(s, id) >= 0 }

// mark records a pick of n by s into the record and the attempt slot, and
// reports whether it added a new entry; size is s's node count, for
// Untried.
func (c *Record) mark(slot *Attempt, s *Selector, n *Node, size int) bool {
	c.lastOwner, c.lastSize = s, size
	*slot = Attempt{Number: slot.Number, Hedge: slot.Hedge, Delay: slot.Delay, Picked: true, Node: *n, Expired: slot.Expired}
	if c.index(s, n.ID) >= 0 {
		return false
	}
	c.tried = append(c.tried, tried{owner: s, node: n, seq: len(c.tried)})
	return true
}

// unmark drops the entry of a pick that was never used (gRPC picks again
// when the chosen connection stopped being ready before the attempt began).
func (c *Record) unmark(s *Selector, id string) {
	if i := c.index(s, id); i >= 0 {
		c.tried = append(c.tried[:i], c.tried[i+1:]...)
	}
}

// failed records when node id of s failed (s's clock).
func (c *Record) failed(s *Selector, id string, at int64) {
	if i := c.index(s, id); i >= 0 {
		c.tried[i].failedAt = at
	}
}

// leastRecentlyFailed returns the ID of the tried node of s, among those ok
// accepts, that failed least recently (one that never failed comes first),
// or "" if there is none.
func (c *Record) leastRecentlyFailed(s *Selector, ok func(id string) bool) string {
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
