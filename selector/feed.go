package selector

import (
	"context"
	"slices"
	"sync"
)

// Feed hands out the latest complete node set of a service to any number
// of Watchers: a Watcher that falls behind skips the sets in between, never
// the latest one. It is the one node-set watcher rpcguard's Sources (Static,
// the health registries) are built on; a Source of your own can use it too.
// Its zero value is ready: an empty set, version 0 (Watchers wait for the
// first Push).
type Feed struct {
	mu      sync.Mutex
	nodes   []Node
	version uint64        // of nodes; 0: nothing pushed yet
	changed chan struct{} // closed and replaced on every Push
	closed  bool
}

// Push makes nodes the latest set (the Feed keeps its own copy).
func (f *Feed) Push(nodes []Node) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes = slices.Clone(nodes)
	f.version++
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
}

// Close ends every Watcher: their Next returns ErrWatcherStopped.
func (f *Feed) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
}

// Watch returns a Watcher of the Feed whose first Next returns the latest
// set (waiting for the first Push if there was none). It ends with ctx, its
// Stop, or the Feed's Close.
func (f *Feed) Watch(ctx context.Context) Watcher {
	ctx, cancel := context.WithCancel(ctx)
	return &feedWatcher{f: f, ctx: ctx, cancel: cancel}
}

type feedWatcher struct {
	f      *Feed
	ctx    context.Context
	cancel context.CancelFunc
	seen   uint64 // the version Next returned last
}

func (w *feedWatcher) Next() ([]Node, error) {
	for {
		w.f.mu.Lock()
		if w.f.closed {
			w.f.mu.Unlock()
			return nil, ErrWatcherStopped
		}
		if w.f.version != w.seen {
			w.seen = w.f.version
			nodes := slices.Clone(w.f.nodes)
			w.f.mu.Unlock()
			return nodes, nil
		}
		if w.f.changed == nil {
			w.f.changed = make(chan struct{})
		}
		ch := w.f.changed
		w.f.mu.Unlock()
		select {
		case <-ch:
		case <-w.ctx.Done():
			return nil, ErrWatcherStopped
		}
	}
}

func (w *feedWatcher) Stop() { w.cancel() }
