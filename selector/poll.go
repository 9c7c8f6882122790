package selector

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// PollOption configures Poll.
type PollOption func(*poll) error

// PollEvery sets how often the Source lists a service again whatever its
// trigger says (a registry that expires nodes without telling, or drops
// events). Default 2 s.
func PollEvery(d time.Duration) PollOption {
	return func(p *poll) error {
		if d <= 0 {
			return fmt.Errorf("selector: PollEvery(%v): must be positive", d)
		}
		p.every = d
		return nil
	}
}

// PollTrigger sets what tells the Source to list a service again before
// its PollEvery: a registry's watch, say. The channel it returns must stop
// sending, and whatever it started must end, when ctx ends. If it fails,
// the Source lists every PollEvery only (and says so through PollOnError).
func PollTrigger(t func(ctx context.Context, service string) (<-chan struct{}, error)) PollOption {
	return func(p *poll) error {
		if t == nil {
			return fmt.Errorf("selector: PollTrigger: nil function")
		}
		p.trigger = t
		return nil
	}
}

// PollOnError sets what runs when listing a service or starting its
// trigger fails (the last node set stays in use). Default: nothing.
func PollOnError(f func(service string, err error)) PollOption {
	return func(p *poll) error {
		if f == nil {
			return fmt.Errorf("selector: PollOnError: nil function")
		}
		p.onError = f
		return nil
	}
}

type poll struct {
	list    func(ctx context.Context, service string) ([]Node, error)
	every   time.Duration
	trigger func(ctx context.Context, service string) (<-chan struct{}, error)
	onError func(service string, err error)
}

// Poll makes a Source of a registry that can list a service's nodes: Watch
// lists once, then again on every trigger (PollTrigger) and every
// PollEvery, and sends each set that differs from the last. Sets are put
// in one order (by ID, then address and metadata) before they are
// compared, so a registry that lists in map order changes nothing; the
// consumer drops bad entries one by one (FilterNodes).
func Poll(list func(ctx context.Context, service string) ([]Node, error), opts ...PollOption) (Source, error) {
	if list == nil {
		return nil, fmt.Errorf("selector: Poll: nil list function")
	}
	p := &poll{list: list, every: 2 * time.Second, onError: func(string, error) {}}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("selector: Poll: nil PollOption")
		}
		if err := o(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Watch implements Source.
func (p *poll) Watch(ctx context.Context, service string) (Watcher, error) {
	if service == "" || strings.ContainsAny(service, " \t\r\n") {
		return nil, fmt.Errorf("selector: bad service name %q", service)
	}
	nodes, err := p.listed(ctx, service)
	if err != nil {
		return nil, err
	}
	feed := &Feed{}
	feed.Push(nodes)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.follow(ctx, feed, service, nodes)
	}()
	return &pollWatcher{Watcher: feed.Watch(ctx), stop: func() { cancel(); <-done }}, nil
}

// pollWatcher is the Feed's Watcher; Stop also ends the polling goroutine.
type pollWatcher struct {
	Watcher
	stop func()
}

func (w *pollWatcher) Stop() { w.Watcher.Stop(); w.stop() }

// listed lists service's nodes, in the one order.
func (p *poll) listed(ctx context.Context, service string) ([]Node, error) {
	nodes, err := p.list(ctx, service)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(nodes, func(a, b Node) int {
		return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.Addr, b.Addr),
			strings.Compare(fmt.Sprint(a.Metadata), fmt.Sprint(b.Metadata))) // fmt prints maps sorted
	})
	return nodes, nil
}

// follow lists again on every trigger and every PollEvery, and pushes each
// set that differs, until ctx ends.
func (p *poll) follow(ctx context.Context, feed *Feed, service string, last []Node) {
	var trigger <-chan struct{}
	if p.trigger != nil {
		var err error
		if trigger, err = p.trigger(ctx, service); err != nil {
			p.onError(service, fmt.Errorf("selector: trigger for %q: %w (listing every %v only)", service, err, p.every))
		}
	}
	tick := time.NewTicker(p.every)
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
			p.onError(service, err)
			continue
		}
		if !slices.EqualFunc(nodes, last, Node.Equal) {
			feed.Push(nodes)
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
