package selector

import (
	"context"
	"fmt"

	"github.com/rpcguard/rpcguard/internal/feed"
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
	// ErrClosed. Other errors are transient: the caller reports
	// them and calls Next again.
	Next() ([]Node, error)
	// Stop ends the watch and unblocks Next. It may be called more than once.
	Stop()
}

// ErrClosed is what Watcher.Next returns after Stop, and what a Group
// returns after Close.
var ErrClosed = feed.ErrClosed

// Static is a Source whose node set is given in code and can be replaced
// with Update while clients watch it. It answers every service name with
// the same nodes.
type Static struct {
	feed feed.Feed[Node]
}

// NewStatic returns a Static source of nodes. It needs at least one node,
// and validates them (see validateNodes).
func NewStatic(nodes ...Node) (*Static, error) {
	s := &Static{}
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
	if err := validateNodes(nodes); err != nil {
		return err
	}
	s.feed.Push(nodes)
	return nil
}

// Watch implements Source.
func (s *Static) Watch(ctx context.Context, service string) (Watcher, error) {
	return s.feed.Watch(ctx), nil
}
