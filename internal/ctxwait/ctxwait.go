// Package ctxwait holds rpcguard's one context-aware wait: every backoff,
// injected delay, drain and re-list pause ends early when its context does.
package ctxwait

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends, and returns ctx's error in that case
// (nil after a full wait). A d of 0 or less returns ctx's error at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
