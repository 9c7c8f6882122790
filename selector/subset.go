package selector

import (
	"fmt"
	"hash/fnv"
	"math/bits"
	"os"
	"slices"
	"sync"
)

// Subset configures subsetting: a client of a large service uses a bounded
// subset of its nodes, so that N clients × M nodes is not N×M connections,
// and a restart of many clients does not reconnect each to every node.
//
// The subsets are deterministic and stable (rpcguard's variant of the SRE
// book's deterministic subsetting): the clients are dealt in rounds of
// S = nodes / Size; in each round every node falls in one of S slices by a
// hash of (round, node ID) that every client computes alike, and client i
// takes slice i mod S of round i / S. So every node is in exactly one
// slice per round, and with client indexes 0, 1, 2, ... every node has the
// same number of clients (within one); a node that leaves or joins changes
// only the one slice per round it belongs to, so only the clients that had
// it (about Size / nodes of them) see their subset change, and they connect
// to no other node. (The SRE book's shuffle-and-cut moves most clients when
// one node leaves.) A slice holds Size nodes on average, give or take its
// square root; one of fewer than half of Size is topped up from the next.
//
// Inside the subset every node keeps what it has without subsetting:
// calls avoid nodes they tried, ejection and recovery. When no node of the
// subset is eligible (all tried by the call, ejected or unreachable), the
// pick takes a node outside it (on gRPC, one of Spares nodes connected for
// that), so a call still goes somewhere healthy.
type Subset struct {
	// Size is the number of nodes a client uses; 0 disables subsetting.
	// Default 32.
	Size int
	// MinNodes: a service with this many nodes or fewer is not subset.
	// Default 200: below it, a connection to every node is cheap (a few
	// hundred idle HTTP/2 connections per client) and a client that
	// spreads its calls over every node balances load best.
	MinNodes int
	// Client is this client's index among the clients of the service: 0,
	// 1, 2, ... (a StatefulSet ordinal, a task index). With dense indexes
	// every node has the same number of clients; negative (the default):
	// unknown, derived from the host name and process ID, and the balance
	// is statistical (as random subsetting's).
	Client int
	// Spares is the number of nodes outside the subset that the gRPC
	// balancer also connects to, for calls that find no eligible node in
	// the subset. Default 2; ignored by other clients, which can reach any
	// node without connecting first.
	Spares int
}

// DefaultSubset returns the default subsetting: 32 nodes per client when
// the service has more than 200, the client's index unknown, 2 spares.
func DefaultSubset() Subset { return Subset{Size: 32, MinNodes: 200, Client: -1, Spares: 2} }

func (s Subset) validate() error {
	switch {
	case s.Size < 0:
		return fmt.Errorf("selector: Subset.Size must not be negative, got %d (0 disables subsetting)", s.Size)
	case s.MinNodes < 0:
		return fmt.Errorf("selector: Subset.MinNodes must not be negative, got %d", s.MinNodes)
	case s.Spares < 0:
		return fmt.Errorf("selector: Subset.Spares must not be negative, got %d", s.Spares)
	}
	return nil
}

// WithSubset sets subsetting (see Subset). Default DefaultSubset();
// WithSubset(Subset{}) disables it.
func WithSubset(s Subset) Option {
	return func(o *options) error {
		if err := s.validate(); err != nil {
			return err
		}
		o.subset = s
		return nil
	}
}

// processClient is the client index of a client that does not know its
// own: a hash of the host name and process ID, the same for the whole
// process.
var processClient = sync.OnceValue(func() int {
	h := fnv.New64a()
	host, _ := os.Hostname()
	fmt.Fprintf(h, "%s/%d", host, os.Getpid())
	return int(h.Sum64() >> 33) // non-negative on every platform
})

// ranks orders nodes for the client: the first `in` are its subset, the
// rest follow in the order they are used when the subset has no eligible
// node. It returns nil when the node set is not subset (too small, or
// subsetting is off).
func (s Subset) ranks(nodes []Node) (order []Node, in int) {
	if !s.applies(len(nodes)) {
		return nil, 0
	}
	slicesN := len(nodes) / s.Size
	client := s.Client
	if client < 0 {
		client = processClient()
	}
	round, mine := uint64(client/slicesN), client%slicesN
	type ranked struct {
		n     Node
		dist  int    // slices after the client's own, in its round
		place uint64 // the hash, the order within a slice
	}
	rs := make([]ranked, len(nodes))
	in = 0
	for i, n := range nodes {
		h := nodeHash(round, n.ID)
		hi, _ := bits.Mul64(h, uint64(slicesN)) // the slice: ⌊h × S / 2^64⌋
		d := (int(hi) - mine + slicesN) % slicesN
		if d == 0 {
			in++
		}
		rs[i] = ranked{n, d, h}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if a.dist != b.dist {
			return a.dist - b.dist
		}
		switch {
		case a.place < b.place:
			return -1
		case a.place > b.place:
			return 1
		}
		return 0
	})
	if min := (s.Size + 1) / 2; in < min {
		in = min // a thin slice: topped up from the next
	}
	order = make([]Node, len(rs))
	for i, r := range rs {
		order[i] = r.n
	}
	return order, in
}

// applies reports whether a fleet of n nodes is subset.
func (s Subset) applies(n int) bool { return s.Size > 0 && n > s.MinNodes && n > s.Size }

// nodeHash places a node in a round: a hash of its ID, mixed with the
// round, the same in every process.
func nodeHash(round uint64, id string) uint64 {
	h := uint64(14695981039346656037) // FNV-1a
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return mix(h ^ mix(round+0x9e3779b97f4a7c15))
}

// mix is splitmix64's finalizer: every input bit moves every output bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
