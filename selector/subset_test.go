package selector

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// subsetAlgo gives client c its connections among nodes (sorted by ID).
type subsetAlgo struct {
	name    string
	connect func(nodes []Node, c int) []Node
}

// The algorithms the simulation compares, each with subsets of size.
func subsetAlgos(size int) []subsetAlgo {
	ours := func(client func(c int) int) func(nodes []Node, c int) []Node {
		return func(nodes []Node, c int) []Node {
			s := Subset{Size: size, Client: client(c), Spares: DefaultSubset().Spares}
			order, in := s.ranks(nodes)
			return order[:in+s.Spares]
		}
	}
	return []subsetAlgo{
		{"rpcguard, client index", ours(func(c int) int { return c })},
		{"rpcguard, index unknown", ours(func(c int) int { return int(mix(uint64(c)) >> 33) })},
		{"SRE book (shuffle, cut)", func(nodes []Node, c int) []Node {
			count := len(nodes) / size
			round := c / count
			shuffled := slices.Clone(nodes)
			rand.New(rand.NewPCG(uint64(round), 0)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			start := (c % count) * size
			return shuffled[start : start+size]
		}},
		{"random", func(nodes []Node, c int) []Node {
			perm := rand.New(rand.NewPCG(uint64(c), 1)).Perm(len(nodes))
			out := make([]Node, size)
			for i := range out {
				out[i] = nodes[perm[i]]
			}
			return out
		}},
	}
}

func simNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: fmt.Sprintf("node-%04d", i), Addr: fmt.Sprintf("10.0.%d.%d:443", i/250, i%250+1)}
	}
	return nodes
}

// subsetStats is one row of the simulation's table.
type subsetStats struct {
	connPerClient, connMaxMean, rrMaxMean, p2cMaxMean  float64
	leaveChanged, leaveGained, joinChanged, joinGained float64 // fractions of clients
}

func simulate(algo subsetAlgo, clients, n int) subsetStats {
	nodes := simNodes(n)
	index := make(map[string]int, n)
	for i, nd := range nodes {
		index[nd.ID] = i
	}
	subsets := make([][]int, clients)
	conns := make([]float64, n)
	rr := make([]float64, n)
	total := 0
	for c := range clients {
		for _, nd := range algo.connect(nodes, c) {
			subsets[c] = append(subsets[c], index[nd.ID])
		}
		total += len(subsets[c])
		for _, i := range subsets[c] {
			conns[i]++
			rr[i] += 1 / float64(len(subsets[c])) // round robin: an equal share of the client's calls
		}
	}
	// Power of two choices, each client's calls in turn: the less loaded
	// of two nodes of its subset (load: the calls the node has had).
	p2c := make([]float64, n)
	rng := rand.New(rand.NewPCG(7, 7))
	for range 20 {
		for c := range clients {
			s := subsets[c]
			a, b := s[rng.IntN(len(s))], s[rng.IntN(len(s))]
			if p2c[b] < p2c[a] {
				a = b
			}
			p2c[a]++
		}
	}
	st := subsetStats{connPerClient: float64(total) / float64(clients), connMaxMean: maxMean(conns), rrMaxMean: maxMean(rr), p2cMaxMean: maxMean(p2c)}
	// One node leaves, one joins: which clients' connections change?
	gone := nodes[n/2].ID
	left := slices.DeleteFunc(slices.Clone(nodes), func(nd Node) bool { return nd.ID == gone })
	joined := append(slices.Clone(nodes), Node{ID: "node-new", Addr: "10.9.9.9:443"})
	for c := range clients {
		before := map[string]bool{}
		for _, i := range subsets[c] {
			before[nodes[i].ID] = true
		}
		for _, ch := range []struct {
			nodes           []Node
			changed, gained *float64
			except          string
		}{{left, &st.leaveChanged, &st.leaveGained, ""}, {joined, &st.joinChanged, &st.joinGained, "node-new"}} {
			after := algo.connect(ch.nodes, c)
			changed, gained := len(after) != len(before), false
			for _, nd := range after {
				if !before[nd.ID] {
					changed = true
					gained = gained || nd.ID != ch.except
				}
			}
			if changed {
				*ch.changed++
			}
			if gained {
				*ch.gained++
			}
		}
	}
	for _, f := range []*float64{&st.leaveChanged, &st.leaveGained, &st.joinChanged, &st.joinGained} {
		*f /= float64(clients)
	}
	return st
}

func maxMean(xs []float64) float64 {
	sum, top := 0.0, 0.0
	for _, x := range xs {
		sum += x
		top = max(top, x)
	}
	return top / (sum / float64(len(xs)))
}

// subsetTable runs the simulation on the fleets and returns its table; it
// checks rpcguard's rows with client indexes: connections balanced within
// 10%; when one node leaves or joins, only the clients that had (or get) it
// change, and hardly any connects to a node it did not have.
func subsetTable(t testing.TB, fleets ...[2]int) string {
	size := DefaultSubset().Size
	var b strings.Builder
	fmt.Fprintf(&b, "\n| clients × nodes | subsets | conns/client | conns max/mean | calls max/mean (rr) | (p2c) | 1 node leaves: clients changed | of them connected to another node | 1 node joins: changed | connected to another |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, fleet := range fleets {
		clients, nodes := fleet[0], fleet[1]
		for _, algo := range subsetAlgos(size) {
			st := simulate(algo, clients, nodes)
			fmt.Fprintf(&b, "| %d × %d | %s | %.1f | %.2f | %.2f | %.2f | %.1f%% | %.1f%% | %.1f%% | %.1f%% |\n", clients, nodes, algo.name,
				st.connPerClient, st.connMaxMean, st.rrMaxMean, st.p2cMaxMean, 100*st.leaveChanged, 100*st.leaveGained, 100*st.joinChanged, 100*st.joinGained)
			if algo.name != "rpcguard, client index" {
				continue
			}
			if st.connMaxMean > 1.1 {
				t.Errorf("%d × %d: connections max/mean %.3f, want at most 1.1", clients, nodes, st.connMaxMean)
			}
			share := float64(size+DefaultSubset().Spares) / float64(nodes) // the clients that have a given node
			if st.leaveChanged > 1.5*share || st.leaveGained > 0.01 || st.joinChanged > 1.5*share || st.joinGained > 0.01 {
				t.Errorf("%d × %d: churn leave %.3f (%.3f gained), join %.3f (%.3f); want about %.3f and near 0",
					clients, nodes, st.leaveChanged, st.leaveGained, st.joinChanged, st.joinGained, share)
			}
		}
	}
	return b.String()
}

// TestSubsetSimulation is the subsetting table for 1,000 clients × 300
// nodes (BenchmarkSubsetSimulation adds 10,000 × 1,000), subsets of the
// default size: rpcguard's against the SRE book's shuffle-and-cut and
// random subsets.
func TestSubsetSimulation(t *testing.T) {
	t.Log(subsetTable(t, [2]int{1000, 300}))
}

// BenchmarkSubsetSimulation prints the whole subsetting table
// (docs/benchmarks.md): go test -run XXX -bench SubsetSimulation -benchtime 1x ./selector/
func BenchmarkSubsetSimulation(b *testing.B) {
	for b.Loop() {
		b.Log(subsetTable(b, [2]int{1000, 300}, [2]int{10000, 1000}))
	}
}

// TestSubsetRanks: the subset is a stable, deterministic function of the
// fleet and the client; a small fleet or Size 0 is not subset.
func TestSubsetRanks(t *testing.T) {
	nodes := simNodes(300)
	s := Subset{Size: 32, MinNodes: 200, Client: 5}
	a, inA := s.ranks(nodes)
	rev := slices.Clone(nodes)
	slices.Reverse(rev)
	b, inB := s.ranks(rev)
	if inA != inB || !slices.EqualFunc(a, b, func(x, y Node) bool { return x.ID == y.ID }) {
		t.Fatal("the order depends on the order of the node list")
	}
	if inA < 16 || inA > 60 || len(a) != 300 {
		t.Fatalf("subset of %d of %d nodes, want about 33 of 300", inA, len(a))
	}
	if o, _ := (Subset{Size: 32, MinNodes: 300, Client: 5}).ranks(nodes); o != nil {
		t.Error("300 nodes with MinNodes 300 were subset")
	}
	if o, _ := (Subset{MinNodes: 0}).ranks(nodes); o != nil {
		t.Error("Size 0 subset the nodes")
	}
	for _, bad := range []Subset{{Size: -1}, {Size: 3, MinNodes: -1}, {Size: 3, Spares: -1}} {
		if _, err := New(WithSubset(bad)); err == nil {
			t.Errorf("WithSubset(%+v): no error", bad)
		}
	}
}

// TestSubsetPicks: picks stay in the subset; a call that tried every node
// of it, or finds them all ejected, goes to a node outside it.
func TestSubsetPicks(t *testing.T) {
	nodes := simNodes(12)
	sel, err := New(WithSubset(Subset{Size: 4, Client: 1}), WithStrategy(PowerOfTwo))
	if err != nil {
		t.Fatal(err)
	}
	if err := sel.Update(nodes); err != nil {
		t.Fatal(err)
	}
	in := map[string]bool{}
	for _, st := range sel.Snapshot() {
		if st.InSubset {
			in[st.Node.ID] = true
		}
	}
	if len(in) < 2 || len(in) > 8 {
		t.Fatalf("subset of %d of 12 nodes, want about 4", len(in))
	}
	for range 200 {
		p, err := sel.Pick(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !in[p.Node.ID] {
			t.Fatalf("picked %s outside the subset %v", p.Node.ID, in)
		}
		p.Done(nil, true)
	}
	// One call tries every node of the subset, then goes outside it.
	ctx := NewRecord(context.Background())
	for i := range len(in) + 1 {
		p, err := sel.Pick(ctx)
		if err != nil {
			t.Fatalf("pick %d: %v", i, err)
		}
		if i < len(in) != in[p.Node.ID] {
			t.Fatalf("pick %d went to %s (in subset: %v)", i, p.Node.ID, in[p.Node.ID])
		}
		p.Done(status.Error(codes.Unavailable, "down"), true)
	}
}
