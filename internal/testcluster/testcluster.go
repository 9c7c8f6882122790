// Package testcluster starts clusters of echo servers for rpcguard's own
// tests, and holds the helpers those tests share (dialing, waiting on a
// condition, running callers in parallel, goleak options). Examples and
// demos use package echo directly: this package imports testing.
package testcluster

import (
	"net"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/selector"
)

// Cluster is a set of nodes, stopped by the test's cleanup.
type Cluster struct {
	Nodes []*echo.Server
}

// Start starts n nodes, named node-0 ... node-(n-1), and stops them when the
// test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	for i := range n {
		node, err := echo.Start("node-" + strconv.Itoa(i))
		if err != nil {
			t.Fatalf("testcluster: %v", err)
		}
		t.Cleanup(node.Kill)
		c.Nodes = append(c.Nodes, node)
	}
	return c
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// Calls returns each node's call count, in node order.
func (c *Cluster) Calls() []int64 {
	out := make([]int64, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Calls()
	}
	return out
}

// DeadAddr returns a 127.0.0.1 address on which nothing listens: a port that
// was just bound and closed again (connections to it are refused).
func DeadAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

// Dial returns a client for target with insecure credentials, closed when
// the test ends.
func Dial(t testing.TB, target string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(target, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatalf("testcluster: NewClient(%q): %v", target, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Resolver returns the dial option that resolves "rpcguard:///SERVICE"
// through src, failing t if the resolver cannot be built.
func Resolver(t testing.TB, src selector.Source, opts ...selector.Option) grpc.DialOption {
	t.Helper()
	rb, err := selector.NewResolverBuilder(src, opts...)
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	return grpc.WithResolvers(rb)
}

// Source returns a selector.Static of the cluster's nodes.
func (c *Cluster) Source(t testing.TB) *selector.Static {
	t.Helper()
	nodes := make([]selector.Node, len(c.Nodes))
	for i, n := range c.Nodes {
		nodes[i] = selector.Node{ID: n.ID, Addr: n.Addr}
	}
	src, err := selector.NewStatic(nodes...)
	if err != nil {
		t.Fatalf("testcluster: %v", err)
	}
	return src
}
