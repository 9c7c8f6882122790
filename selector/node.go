package selector

import (
	"fmt"
	"maps"
	"unicode"
	"unicode/utf8"

	"github.com/rpcguard/rpcguard/internal/netaddr"
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

// maxIDLen is the longest node ID, in bytes.
const maxIDLen = 256

// Validate reports whether n has a valid ID and an address that parses as
// host:port with a numeric port in 1..65535. An ID is valid UTF-8 of 1 to
// maxIDLen bytes, without '/', white space or control characters: it names
// a registry key, a metric label and a span tag, wherever it came from.
// The selector, the resolver and every registry check nodes with it.
func (n Node) Validate() error {
	if err := validateID(n.ID); err != nil {
		return fmt.Errorf("selector: node with address %q: %w", n.Addr, err)
	}
	if err := validateAddr(n.Addr); err != nil {
		return fmt.Errorf("selector: node %q: %w", n.ID, err)
	}
	return nil
}

func validateID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("empty ID")
	case len(id) > maxIDLen:
		return fmt.Errorf("ID of %d bytes (%q...), at most %d", len(id), id[:32], maxIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("ID %q is not valid UTF-8", id)
	}
	for _, c := range id {
		if c == '/' || unicode.IsSpace(c) || unicode.IsControl(c) || c == utf8.RuneError {
			return fmt.Errorf("ID %q must not contain '/', white space or control characters", id)
		}
	}
	return nil
}

// validateAddr reports whether addr is a dialable "host:port": a host that
// is an IP address or a DNS name (letters, digits, '-', '_' and '.'; no
// spaces or control characters) and a numeric port in 1..65535.
func validateAddr(addr string) error {
	_, err := netaddr.Canonical(addr)
	return err
}

// validateNodes checks every node and that no ID or address appears twice
// (addresses compared in canonical form: "Host:80" and "host:80" are one).
// An empty set is valid here: a service may have no node for a while; a pick
// then fails with ErrNoNodes.
func validateNodes(nodes []Node) error {
	if _, dropped := filterNodes(nodes); len(dropped) > 0 {
		return dropped[0]
	}
	return nil
}

// filterNodes keeps the nodes of a set that are valid, dropping each bad one
// on its own: an invalid node, and a node whose ID or address (canonical
// form) an earlier node of the set already has. It returns one error per
// dropped node. Sources that merge entries from several writers (a
// registry) list the entry that should win a shared address first; the
// resolver applies what filterNodes keeps and reports the rest.
func filterNodes(nodes []Node) (kept []Node, dropped []error) {
	ids := make(map[string]string, len(nodes))
	addrs := make(map[string]string, len(nodes))
	kept = make([]Node, 0, len(nodes))
	for _, n := range nodes {
		if err := n.Validate(); err != nil {
			dropped = append(dropped, err)
			continue
		}
		ca, _ := netaddr.Canonical(n.Addr) // valid: Validate checked it
		if prev, ok := ids[n.ID]; ok {
			dropped = append(dropped, fmt.Errorf("selector: duplicate node ID %q (addresses %q and %q)", n.ID, prev, n.Addr))
			continue
		}
		if prev, ok := addrs[ca]; ok {
			dropped = append(dropped, fmt.Errorf("selector: nodes %q and %q share the address %q", prev, n.ID, n.Addr))
			continue
		}
		ids[n.ID] = n.Addr
		addrs[ca] = n.ID
		kept = append(kept, n)
	}
	return kept, dropped
}

// Equal reports whether two nodes are the same in every field.
func (n Node) Equal(o Node) bool {
	return n.ID == o.ID && n.Addr == o.Addr && maps.Equal(n.Metadata, o.Metadata)
}
