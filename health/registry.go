package health

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
	// List returns the service's live nodes, ordered by ID.
	List(ctx context.Context, service string) ([]selector.Node, error)
	// Watch streams the service's complete node sets (see selector.Watcher).
	Watch(ctx context.Context, service string) (selector.Watcher, error)
}

// validService checks a service name: non-empty, no '/' and no spaces
// (it is part of the registry's keys).
func validService(service string) error {
	if service == "" {
		return fmt.Errorf("health: empty service name")
	}
	if strings.ContainsAny(service, "/ \t\n") {
		return fmt.Errorf("health: service name %q must not contain '/' or spaces", service)
	}
	return nil
}

func validRegistration(service string, node selector.Node, ttl time.Duration) error {
	if err := validService(service); err != nil {
		return err
	}
	if err := validNode(node); err != nil {
		return fmt.Errorf("health: service %q: %w", service, err)
	}
	if ttl <= 0 {
		return fmt.Errorf("health: service %q, node %q: TTL must be positive, got %v", service, node.ID, ttl)
	}
	return nil
}

// validNode checks a node as the registries store it: valid for the
// selector, and an ID that can be part of a key (no '/', no spaces or
// control characters). Register refuses other nodes, and a registry skips
// such entries when it reads them.
func validNode(n selector.Node) error {
	if err := n.Validate(); err != nil {
		return err
	}
	for _, c := range n.ID {
		if c == '/' || c <= ' ' || c == 0x7f {
			return fmt.Errorf("node ID %q must not contain '/', spaces or control characters", n.ID)
		}
	}
	return nil
}

// record is how a node is stored: JSON {"id", "addr", "metadata"}.
type record struct {
	ID       string            `json:"id"`
	Addr     string            `json:"addr"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

func encode(n selector.Node) []byte {
	b, _ := json.Marshal(record{ID: n.ID, Addr: n.Addr, Metadata: n.Metadata}) // cannot fail: strings only
	return b
}

// decode parses a stored node and validates it.
func decode(b []byte) (selector.Node, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return selector.Node{}, fmt.Errorf("not a node record: %w", err)
	}
	n := selector.Node{ID: r.ID, Addr: r.Addr, Metadata: r.Metadata}
	if err := validNode(n); err != nil {
		return selector.Node{}, err
	}
	return n, nil
}
