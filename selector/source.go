package selector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Source supplies the nodes of services: a static list (Static), or a
// registry (package health's registries satisfy it).
type Source interface {
	// Watch starts watching service. The Watcher's first Next returns the
	// current node set.
	Watch(ctx context.Context, service string) (Watcher, error)
}

// Watcher streams the complete node sets of one service.
type Watcher interface {
	// Next blocks until the node set differs from the one it last returned
	// (the first call returns the current set) and returns the whole set.
	// After Stop, or once the Watch's ctx is done, it returns
	// ErrWatcherStopped. Other errors are transient: the caller reports
	// them and calls Next again.
	Next() ([]Node, error)
	// Stop ends the watch and unblocks Next. It may be called more than once.
	Stop()
}

// ErrWatcherStopped is returned by Watcher.Next after Stop.
var ErrWatcherStopped = errors.New("selector: watcher stopped")

// Static is a Source whose node set is given in code and can be replaced
// with Update while clients watch it. It answers every service name with
// the same nodes.
type Static struct {
	mu      sync.Mutex
	nodes   []Node
	version uint64
	changed chan struct{} // closed and replaced on every Update
}

// NewStatic returns a Static source of nodes. It needs at least one node,
// and validates them (see ValidateNodes).
func NewStatic(nodes ...Node) (*Static, error) {
	s := &Static{changed: make(chan struct{})}
	if err := s.Update(nodes...); err != nil {
		return nil, err
	}
	return s, nil
}

// Update replaces the node set; watchers see the new set. It needs at least
// one node and changes nothing on error.
func (s *Static) Update(nodes ...Node) error {
	if len(nodes) == 0 {
		return fmt.Errorf("selector: a static source needs at least one node")
	}
	if err := ValidateNodes(nodes); err != nil {
		return err
	}
	s.mu.Lock()
	s.nodes = slices.Clone(nodes)
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// Watch implements Source.
func (s *Static) Watch(ctx context.Context, service string) (Watcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	return &staticWatcher{s: s, ctx: ctx, cancel: cancel}, nil
}

type staticWatcher struct {
	s      *Static
	ctx    context.Context
	cancel context.CancelFunc
	seen   uint64 // version last returned; versions start at 1
}

func (w *staticWatcher) Next() ([]Node, error) {
	for {
		w.s.mu.Lock()
		if w.s.version != w.seen {
			w.seen = w.s.version
			nodes := slices.Clone(w.s.nodes)
			w.s.mu.Unlock()
			return nodes, nil
		}
		ch := w.s.changed
		w.s.mu.Unlock()
		select {
		case <-ch:
		case <-w.ctx.Done():
			return nil, ErrWatcherStopped
		}
	}
}

func (w *staticWatcher) Stop() { w.cancel() }
