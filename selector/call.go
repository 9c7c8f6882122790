package selector

import (
	"context"
	"sync"
)

// Call is the per-call record: the nodes one logical call (all its attempts,
// retries and hedges) has tried. It travels in the call's context; every
// pick made with that context avoids the nodes the record holds for the same
// Selector. It is safe for concurrent use (hedged attempts pick at once).
type Call struct {
	mu    sync.Mutex
	tried []tried
	buf   [3]tried // backs tried for the usual few attempts: no allocation
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
	c := &Call{}
	c.tried = c.buf[:0]
	return context.WithValue(ctx, callKey{}, c)
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
	c, _ := ctx.Value(callKey{}).(*Call)
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
