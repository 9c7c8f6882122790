package selector

import (
	"fmt"
	"maps"
	"net"
	"strconv"
)

// Node is one instance of a service: where to reach it and what it says about
// itself.
type Node struct {
	// ID names the node uniquely within its service. Required.
	ID string
	// Addr is the node's "host:port". Required; the port is numeric.
	Addr string
	// Metadata holds the node's labels (version, zone, ...). Filters read it.
	// A Node handed to a Selector must not have its Metadata changed later.
	Metadata map[string]string
}

// String returns "id@addr".
func (n Node) String() string { return n.ID + "@" + n.Addr }

// Validate reports whether n has an ID and an address that parses as
// host:port with a numeric port in 1..65535.
func (n Node) Validate() error {
	if n.ID == "" {
		return fmt.Errorf("selector: node with address %q: empty ID", n.Addr)
	}
	if err := ValidateAddr(n.Addr); err != nil {
		return fmt.Errorf("selector: node %q: %w", n.ID, err)
	}
	return nil
}

// ValidateAddr reports whether addr is a dialable "host:port": a non-empty
// host and a numeric port in 1..65535.
func ValidateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q does not parse as host:port: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: port %q is not a number in 1..65535", addr, port)
	}
	return nil
}

// ValidateNodes checks every node and that no ID or address appears twice.
// An empty set is valid here: a service may have no node for a while; a pick
// then fails with ErrNoNodes.
func ValidateNodes(nodes []Node) error {
	ids := make(map[string]string, len(nodes))
	addrs := make(map[string]string, len(nodes))
	for _, n := range nodes {
		if err := n.Validate(); err != nil {
			return err
		}
		if prev, ok := ids[n.ID]; ok {
			return fmt.Errorf("selector: duplicate node ID %q (addresses %q and %q)", n.ID, prev, n.Addr)
		}
		if prev, ok := addrs[n.Addr]; ok {
			return fmt.Errorf("selector: nodes %q and %q share the address %q", prev, n.ID, n.Addr)
		}
		ids[n.ID] = n.Addr
		addrs[n.Addr] = n.ID
	}
	return nil
}

// Equal reports whether two nodes are the same in every field.
func (n Node) Equal(o Node) bool {
	return n.ID == o.ID && n.Addr == o.Addr && maps.Equal(n.Metadata, o.Metadata)
}
