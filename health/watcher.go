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

// sorted returns the nodes of m ordered by ID.
func sorted(m map[string]selector.Node) []selector.Node {
	out := make([]selector.Node, 0, len(m))
	for _, n := range m {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b selector.Node) int { return strings.Compare(a.ID, b.ID) })
	return out
}
