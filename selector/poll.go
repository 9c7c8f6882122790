package selector

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rpcguard/rpcguard/internal/feed"
)

// Poller says how Poll follows a registry that can list a service's nodes.
type Poller struct {
	// List lists a service's nodes. Required.
	List func(ctx context.Context, service string) ([]Node, error)
	// Trigger, if set, starts a watch of a service (a registry's) and
	// returns wait, which blocks until the registry says the service
	// changed (the Source then lists it again, before Every) and returns an
	// error once the watch ended; wait must return once ctx ends. If
	// Trigger fails, the Source lists every Every only (and says so to
	// OnError).
	Trigger func(ctx context.Context, service string) (wait func() error, err error)
	// Every is how often the Source lists a service again whatever Trigger
	// says (a registry that expires nodes without telling, or drops
	// events). Zero means 2 s.
	Every time.Duration
	// OnError, if set, runs when listing a service or starting its trigger
	// fails (the last node set stays in use).
	OnError func(service string, err error)
}

// Poll makes a Source of a registry that can list a service's nodes: Watch
// lists once, then again on every Trigger and every Every, and sends each
// set that differs from the last. Sets are put in one order (by ID, then
// address and metadata) before they are compared, so a registry that lists
// in map order changes nothing; the consumer drops bad entries one by one.
func Poll(p Poller) (Source, error) {
	switch {
	case p.List == nil:
		return nil, fmt.Errorf("selector: Poll: nil Poller.List")
	case p.Every < 0:
		return nil, fmt.Errorf("selector: Poll: Poller.Every %v: must not be negative", p.Every)
	case p.Every == 0:
		p.Every = 2 * time.Second
	}
	if p.OnError == nil {
		p.OnError = func(string, error) {}
	}
	return &poll{p}, nil
}

// poll is the Source Poll returns.
type poll struct{ Poller }

// Watch implements Source.
func (p *poll) Watch(ctx context.Context, service string) (Watcher, error) {
	if service == "" || strings.ContainsAny(service, " \t\r\n") {
		return nil, fmt.Errorf("selector: bad service name %q", service)
	}
	nodes, err := p.listed(ctx, service)
	if err != nil {
		return nil, err
	}
	f := &feed.Feed[Node]{}
	f.Push(nodes)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.follow(ctx, f, service, nodes)
	}()
	return &pollWatcher{Watcher: f.Watch(ctx), stop: func() { cancel(); <-done }}, nil
}

// pollWatcher is the feed's Watcher; Stop also ends the polling goroutine.
type pollWatcher struct {
	Watcher
	stop func()
}

func (w *pollWatcher) Stop() { w.Watcher.Stop(); w.stop() }

// listed lists service's nodes, in the one order.
func (p *poll) listed(ctx context.Context, service string) (nodes []Node, err error) {
	defer func() {
		if v := recover(); v != nil { // the registry's code: a panic is a failed listing, not a crash
			nodes, err = nil, fmt.Errorf("selector: listing %q panicked: %v", service, v)
		}
	}()
	nodes, err = p.List(ctx, service)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(nodes, func(a, b Node) int {
		return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.Addr, b.Addr),
			strings.Compare(fmt.Sprint(a.Metadata), fmt.Sprint(b.Metadata))) // fmt prints maps sorted
	})
	return nodes, nil
}

// follow lists again on every trigger and every p.Every, and pushes each
// set that differs, until ctx ends.
func (p *poll) follow(ctx context.Context, f *feed.Feed[Node], service string, last []Node) {
	var trigger <-chan struct{}
	if p.Trigger != nil {
		if wait, err := p.Trigger(ctx, service); err != nil {
			p.OnError(service, fmt.Errorf("selector: trigger for %q: %w (listing every %v only)", service, err, p.Every))
		} else {
			ch, waited := make(chan struct{}, 1), make(chan struct{})
			defer func() { <-waited }()
			go func() {
				defer close(waited)
				defer close(ch)
				defer func() {
					if v := recover(); v != nil { // the registry's code: the watch ends, polling goes on
						p.OnError(service, fmt.Errorf("selector: trigger for %q panicked: %v (listing every %v only)", service, v, p.Every))
					}
				}()
				for wait() == nil {
					select {
					case ch <- struct{}{}:
					default: // a list is due already
					}
				}
			}()
			trigger = ch
		}
	}
	tick := time.NewTicker(p.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-trigger:
			if !ok {
				trigger = nil // ended: poll only
				continue
			}
		case <-tick.C:
		}
		nodes, err := p.listed(ctx, service)
		if err != nil {
			p.OnError(service, err)
			continue
		}
		if !slices.EqualFunc(nodes, last, Node.Equal) {
			f.Push(nodes)
			last = nodes
		}
	}
}

// Diff compares two node sets by ID: the nodes of next that prev lacks,
// those of next whose address or metadata changed, and those of prev that
// next lacks (in prev's order). A registry adapter turns complete sets into
// create, update and delete events with it.
func Diff(prev, next []Node) (added, changed, removed []Node) {
	old := make(map[string]Node, len(prev))
	for _, n := range prev {
		old[n.ID] = n
	}
	now := make(map[string]bool, len(next))
	for _, n := range next {
		now[n.ID] = true
		switch o, ok := old[n.ID]; {
		case !ok:
			added = append(added, n)
		case !o.Equal(n):
			changed = append(changed, n)
		}
	}
	for _, n := range prev {
		if !now[n.ID] {
			removed = append(removed, n)
		}
	}
	return added, changed, removed
}
