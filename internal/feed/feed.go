// Package feed hands out the latest complete set of something (a service's
// nodes) to any number of watchers: the one node-set watcher that
// selector's Sources and health's registries are built on.
package feed

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// ErrClosed is what Next returns once its Watcher stopped or its Feed
// closed; package selector exports it as selector.ErrClosed.
var ErrClosed = errors.New("selector: closed")

// Feed hands out the latest set to any number of Watchers: a Watcher that
// falls behind skips the sets in between, never the latest one. Its zero
// value is ready: an empty set, version 0 (Watchers wait for the first
// Push).
type Feed[T any] struct {
	mu      sync.Mutex
	items   []T
	version uint64        // of items; 0: nothing pushed yet
	changed chan struct{} // closed and replaced on every Push
	closed  bool
}

// Push makes items the latest set (the Feed keeps its own copy).
func (f *Feed[T]) Push(items []T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items = slices.Clone(items)
	f.version++
	f.wake()
}

// wake tells the waiting Watchers; f.mu is held.
func (f *Feed[T]) wake() {
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
}

// Close ends every Watcher: their Next returns ErrClosed.
func (f *Feed[T]) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		f.wake()
	}
}

// Watch returns a Watcher whose first Next returns the latest set (waiting
// for the first Push if there was none). It ends with ctx, its Stop, or the
// Feed's Close.
func (f *Feed[T]) Watch(ctx context.Context) *Watcher[T] {
	ctx, cancel := context.WithCancel(ctx)
	return &Watcher[T]{f: f, ctx: ctx, cancel: cancel}
}

// Watcher follows a Feed.
type Watcher[T any] struct {
	f      *Feed[T]
	ctx    context.Context
	cancel context.CancelFunc
	seen   uint64 // the version Next returned last
}

// Next returns the latest set once it differs from the one returned last.
func (w *Watcher[T]) Next() ([]T, error) {
	for {
		w.f.mu.Lock()
		if w.f.closed {
			w.f.mu.Unlock()
			return nil, ErrClosed
		}
		if w.f.version != w.seen {
			w.seen = w.f.version
			items := slices.Clone(w.f.items)
			w.f.mu.Unlock()
			return items, nil
		}
		if w.f.changed == nil {
			w.f.changed = make(chan struct{})
		}
		ch := w.f.changed
		w.f.mu.Unlock()
		select {
		case <-ch:
		case <-w.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// Stop ends the Watcher.
func (w *Watcher[T]) Stop() { w.cancel() }
