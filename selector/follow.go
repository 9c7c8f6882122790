package selector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rpcguard/rpcguard/internal/ctxwait"
)

// Watch errors are retried after a delay that doubles from retryMin to
// retryMax, so that a Source that fails at once does not spin.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 5 * time.Second
)

// follow is the one Source → node-set loop, under the gRPC resolver and
// Group: it filters each set the Watcher sends and hands the valid nodes
// to set, reports a set with none and every Watch error to fail (retrying
// the watch with a backoff), and returns when the Watcher stops or ctx
// ends.
func follow(ctx context.Context, w Watcher, service string, onDropped func(string, error), set func([]Node), fail func(error)) {
	delay := retryMin
	for {
		nodes, err := w.Next()
		if errors.Is(err, ErrClosed) || ctx.Err() != nil {
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
		nodes, dropped := filterNodes(nodes)
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
