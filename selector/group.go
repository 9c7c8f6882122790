package selector

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Group keeps one Selector per service, each following that service's
// nodes in a Source, for a client that calls many services through one
// selector (go-micro's). Each Selector is named after its service
// (WithName), so that an observer can tell them apart. It is safe for
// concurrent use.
type Group struct {
	src       Source
	opts      []Option
	onDropped func(service string, err error)

	mu      sync.Mutex
	members map[string]*member
	closed  bool
}

type member struct {
	sel   *Selector
	ready chan struct{} // closed when the first node set was applied or the watch ended
	stop  func()
}

// NewGroup returns a Group whose Selectors take opts and follow src.
func NewGroup(src Source, opts ...Option) (*Group, error) {
	if isNil(src) {
		return nil, fmt.Errorf("selector: NewGroup: nil Source")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("selector: NewGroup: %w", err)
	}
	return &Group{src: src, opts: slices.Clone(opts), onDropped: o.onDropped(), members: map[string]*member{}}, nil
}

// Selector returns service's Selector, following src from its first use
// on; the first use waits for the Source's first answer until ctx ends (a
// service with no valid node is an empty Selector: its picks fail with
// ErrNoNodes). No lock is held while it waits.
func (g *Group) Selector(ctx context.Context, service string) (*Selector, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, ErrClosed
	}
	m, ok := g.members[service]
	if !ok {
		var err error
		if m, err = g.follow(service); err != nil {
			g.mu.Unlock()
			return nil, err
		}
		g.members[service] = m
	}
	g.mu.Unlock()
	select {
	case <-m.ready:
	case <-ctx.Done():
	}
	return m.sel, nil
}

// follow starts following service. g.mu is held; nothing here blocks.
func (g *Group) follow(service string) (*member, error) {
	sel, err := New(append(slices.Clone(g.opts), WithName(service))...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := g.src.Watch(ctx, service)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("selector: watch service %q: %w", service, err)
	}
	m := &member{sel: sel, ready: make(chan struct{})}
	var once sync.Once
	ready := func() { once.Do(func() { close(m.ready) }) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer ready()
		follow(ctx, w, service, g.onDropped,
			func(nodes []Node) { _ = sel.Update(nodes); ready() }, // filtered: valid
			func(error) { ready() })                               // no valid node, or a failed watch: no use waiting
	}()
	m.stop = func() { cancel(); w.Stop(); <-done }
	return m, nil
}

// Reset forgets what service's Selector learned (ejections, latency): the
// next use starts afresh.
func (g *Group) Reset(service string) {
	g.mu.Lock()
	m, ok := g.members[service]
	delete(g.members, service)
	g.mu.Unlock()
	if ok {
		m.stop()
	}
}

// Close stops following every service; the Group refuses use after it
// (ErrClosed). Closing twice is harmless.
func (g *Group) Close() error {
	g.mu.Lock()
	members := g.members
	g.members, g.closed = map[string]*member{}, true
	g.mu.Unlock()
	for _, m := range members {
		m.stop()
	}
	return nil
}
