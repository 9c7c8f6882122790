package selector

import (
	"context"
	"time"

	"github.com/rpcguard/rpcguard/internal/record"
)

// NewRecord returns a context that carries a fresh per-call record: every
// pick made with it (or a context derived from it) avoids the nodes the
// record holds for the same Selector, and records the one it picks. Give
// every attempt of one logical call a context derived from it, and start a
// new one for the next logical call. Retry engines and rpcguard's
// interceptors do this for you; the record is described in one place, in
// package internal/record.
func NewRecord(ctx context.Context) context.Context { return record.New(ctx) }

// Attempt is what is known of one attempt of a call: its number, wait and
// whether it is a hedge (set by the retry engine before it runs), the node
// a selector picked for it, and, once the attempt's outcome was reported
// (Picked.Done, Finish, the gRPC balancer), whether it may have reached
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
	// (gRPC reports whether any byte was sent); Picked.Done assumes true,
	// Picked.Finish says.
	Sent bool
}

// AttemptFrom returns the Attempt of ctx's current attempt, and false if
// ctx carries no record.
func AttemptFrom(ctx context.Context) (Attempt, bool) {
	a, ok := record.AttemptFrom(ctx)
	if !ok {
		return Attempt{}, false
	}
	var n Node
	if p, ok := a.Node.(*Node); ok {
		n = *p
	}
	return Attempt{Number: a.Number, Hedge: a.Hedge, Delay: a.Delay, Picked: a.Picked, Node: n, Done: a.Done, Sent: a.Sent}, true
}
