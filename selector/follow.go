package selector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rpcguard/rpcguard/internal/ctxwait"
)

// Follow keeps sel's node set equal to service's nodes in src, for a client
// that does not use the gRPC resolver (the plain API, go-micro): each set
// the Source sends is filtered (FilterNodes: bad entries are dropped one by
// one and reported through WithOnDropped) and given to sel.Update; a set
// with no valid node leaves the last one in place. Watch errors are retried
// with a backoff. It returns once the first set is applied, and stop ends
// the watch and waits for its goroutine.
func Follow(ctx context.Context, src Source, service string, sel *Selector, opts ...ResolverOption) (stop func(), err error) {
	if sel == nil {
		return nil, fmt.Errorf("selector: Follow: nil Selector")
	}
	b, err := newResolverBuilder(src, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w, err := src.Watch(ctx, service)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("selector: watch service %q: %w", service, err)
	}
	first := make(chan struct{})
	done := make(chan struct{})
	onDropped := b.onDropped
	go func() {
		defer close(done)
		once := false
		follow(ctx, w, service, onDropped, func(nodes []Node) {
			_ = sel.Update(nodes) // filtered: valid
			if !once {
				once = true
				close(first)
			}
		}, func(err error) { logger.Warningf("%v", err) })
		if !once {
			close(first)
		}
	}()
	select {
	case <-first:
	case <-ctx.Done():
	}
	return func() { cancel(); w.Stop(); <-done }, nil
}

// Watch errors are retried after a delay that doubles from retryMin to
// retryMax, so that a Source that fails at once does not spin.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 5 * time.Second
)

// follow is the one Source → node-set loop, under the gRPC resolver and
// Follow: it filters each set the Watcher sends and hands the valid nodes
// to set, reports a set with none and every Watch error to fail (retrying
// the watch with a backoff), and returns when the Watcher stops or ctx
// ends.
func follow(ctx context.Context, w Watcher, service string, onDropped func(string, error), set func([]Node), fail func(error)) {
	delay := retryMin
	for {
		nodes, err := w.Next()
		if errors.Is(err, ErrWatcherStopped) || ctx.Err() != nil {
			return
		}
		if err != nil {
			fail(fmt.Errorf("selector: watch service %q: %w", service, err))
			if ctxwait.Sleep(ctx, delay) != nil {
				return
			}
			delay = min(2*delay, retryMax)
			continue
		}
		delay = retryMin
		nodes, dropped := FilterNodes(nodes)
		for _, err := range dropped {
			onDropped(service, err)
		}
		if len(nodes) == 0 {
			fail(fmt.Errorf("selector: service %q has no valid nodes", service))
			continue
		}
		set(nodes)
	}
}
