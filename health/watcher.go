package health

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/rpcguard/rpcguard/selector"
)

// watcher hands out the latest complete node set of a service: a reader
// that falls behind skips sets in between, never the latest one.
type watcher struct {
	mu      sync.Mutex
	latest  []selector.Node
	version uint64 // of latest; 0: nothing yet
	seen    uint64 // the version Next returned last
	changed chan struct{}
	ctx     context.Context
	stop    context.CancelFunc
}

func newWatcher(ctx context.Context) *watcher {
	ctx, cancel := context.WithCancel(ctx)
	return &watcher{changed: make(chan struct{}, 1), ctx: ctx, stop: cancel}
}

// push makes nodes the latest set.
func (w *watcher) push(nodes []selector.Node) {
	w.mu.Lock()
	w.latest = nodes
	w.version++
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *watcher) Next() ([]selector.Node, error) {
	for {
		w.mu.Lock()
		if w.version != w.seen {
			w.seen = w.version
			nodes := w.latest
			w.mu.Unlock()
			return nodes, nil
		}
		w.mu.Unlock()
		select {
		case <-w.changed:
		case <-w.ctx.Done():
			return nil, selector.ErrWatcherStopped
		}
	}
}

func (w *watcher) Stop() { w.stop() }

// entry is a registered node and the order of its registration (a
// sequence number or etcd's create revision: higher is newer).
type entry struct {
	node selector.Node
	seq  int64
}

// resolve returns the nodes of a service ordered by ID, one per address:
// when two entries share an address (canonical form), the newer
// registration wins (a process restarted under a new ID on the same port
// before its old entry expired: the old one is a ghost). drop runs for
// each entry left out, with the winner.
func resolve(entries map[string]entry, drop func(lost, won selector.Node)) []selector.Node {
	byAddr := make(map[string]entry, len(entries))
	for _, e := range entries {
		ca, err := selector.CanonicalAddr(e.node.Addr)
		if err != nil {
			ca = e.node.Addr // stored entries are valid; keep it apart
		}
		prev, ok := byAddr[ca]
		if !ok {
			byAddr[ca] = e
			continue
		}
		won, lost := e, prev
		if prev.seq > e.seq || (prev.seq == e.seq && prev.node.ID < e.node.ID) {
			won, lost = prev, e
		}
		byAddr[ca] = won
		if drop != nil {
			drop(lost.node, won.node)
		}
	}
	out := make([]selector.Node, 0, len(byAddr))
	for _, e := range byAddr {
		out = append(out, e.node)
	}
	slices.SortFunc(out, func(a, b selector.Node) int { return strings.Compare(a.ID, b.ID) })
	return out
}
