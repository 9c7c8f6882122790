// Package registry holds what rpcguard's registries (health's memory
// registry, health/etcd) share: the validation of what they store, the
// stored form of a node, and how a service's entries become its node set.
package registry

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rpcguard/rpcguard/selector"
)

// ValidService checks a service name: non-empty, no '/' and no spaces
// (it is part of the registry's keys).
func ValidService(service string) error {
	if service == "" {
		return fmt.Errorf("empty service name")
	}
	if strings.ContainsAny(service, "/ \t\n") {
		return fmt.Errorf("service name %q must not contain '/' or spaces", service)
	}
	return nil
}

// ValidRegistration checks what Register is given.
func ValidRegistration(service string, node selector.Node, ttl time.Duration) error {
	if err := ValidService(service); err != nil {
		return err
	}
	if err := ValidNode(node); err != nil {
		return fmt.Errorf("service %q: %w", service, err)
	}
	if ttl <= 0 {
		return fmt.Errorf("service %q, node %q: TTL must be positive, got %v", service, node.ID, ttl)
	}
	return nil
}

// ValidNode checks a node as the registries store it: the one validation
// of nodes (selector.Node.Validate). Register refuses other nodes, and a
// registry skips such entries when it reads them.
func ValidNode(n selector.Node) error { return n.Validate() }

// record is how a node is stored: JSON {"id", "addr", "metadata"}.
type record struct {
	ID       string            `json:"id"`
	Addr     string            `json:"addr"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Encode returns the stored form of n.
func Encode(n selector.Node) []byte {
	b, _ := json.Marshal(record{ID: n.ID, Addr: n.Addr, Metadata: n.Metadata}) // cannot fail: strings only
	return b
}

// Decode parses a stored node and validates it.
func Decode(b []byte) (selector.Node, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return selector.Node{}, fmt.Errorf("not a node record: %w", err)
	}
	n := selector.Node{ID: r.ID, Addr: r.Addr, Metadata: r.Metadata}
	if err := ValidNode(n); err != nil {
		return selector.Node{}, err
	}
	return n, nil
}

// Entry is a registered node and the order of its registration (a
// sequence number or etcd's create revision: higher is newer).
type Entry struct {
	Node selector.Node
	Seq  int64
}

// Resolve returns the nodes of a service, every entry kept (go-micro's
// broker registers one node per subscription, all at one address), newest
// registration first, ties by ID: when two entries share an address (a
// process restarted under a new ID on the same port before its old entry
// expired), the consumer keeps the first it sees (the selector does), and
// so the newer registration.
func Resolve(entries map[string]Entry) []selector.Node {
	es := slices.Collect(maps.Values(entries))
	slices.SortFunc(es, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(b.Seq, a.Seq), strings.Compare(a.Node.ID, b.Node.ID))
	})
	out := make([]selector.Node, len(es))
	for i, e := range es {
		out[i] = e.Node
	}
	return out
}
