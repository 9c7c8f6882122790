package health

import (
	"context"
	"time"

	"github.com/rpcguard/rpcguard/selector"
)

// Registry keeps the live nodes of services.
type Registry interface {
	// Register adds node to service, or renews it, for ttl: without another
	// Register within ttl the node is dropped. A node ID already registered
	// with another address is an error.
	Register(ctx context.Context, service string, node selector.Node, ttl time.Duration) error
	// Deregister removes the node now. Removing an unknown node is not an
	// error.
	Deregister(ctx context.Context, service, nodeID string) error
	// List returns the service's live nodes: every registration (several
	// may share an address: go-micro's broker registers one per
	// subscription), the newest first. Where two share an address (a
	// process restarted under a new ID on the same port before its old
	// entry expired), a selector keeps the first, the newer.
	List(ctx context.Context, service string) ([]selector.Node, error)
	// Watch streams the service's complete node sets (see selector.Watcher).
	Watch(ctx context.Context, service string) (selector.Watcher, error)
}
