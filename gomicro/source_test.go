package gomicro_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/selector"
)

// ids waits for the watcher's next set and returns its node IDs.
func next(t *testing.T, w selector.Watcher) []string {
	t.Helper()
	nodes, err := w.Next()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

// waitSet reads sets until one has exactly want.
func waitSet(t *testing.T, w selector.Watcher, want ...string) {
	t.Helper()
	got := make(chan []string, 1)
	go func() {
		for {
			ids := next(t, w)
			if slices.Equal(ids, want) {
				got <- ids
				return
			}
		}
	}()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		w.Stop()
		t.Fatalf("the watch never held %v", want)
	}
}

func service(version string, nodes ...*registry.Node) *registry.Service {
	return &registry.Service{Name: "greeter", Version: version, Nodes: nodes}
}

// The Source follows a go-micro registry: registrations, deregistrations,
// and a node that expires without a watch event (the memory registry's).
func TestSourceFollowsARegistry(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	if err := reg.Register(service("v1", &registry.Node{Id: "a", Address: "127.0.0.1:1"}, &registry.Node{Id: "b", Address: "127.0.0.1:2"})); err != nil {
		t.Fatal(err)
	}
	src, err := gomicro.Source(reg, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	w, err := src.Watch(context.Background(), "greeter")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	nodes, err := w.Next()
	if err != nil || len(nodes) != 2 || nodes[0].Metadata["version"] != "v1" {
		t.Fatalf("first set: %v, %v; want a and b, version v1", nodes, err)
	}
	if err := reg.Register(service("v2", &registry.Node{Id: "c", Address: "127.0.0.1:3"})); err != nil {
		t.Fatal(err)
	}
	waitSet(t, w, "a", "b", "c")
	if err := reg.Deregister(service("v1", &registry.Node{Id: "a", Address: "127.0.0.1:1"})); err != nil {
		t.Fatal(err)
	}
	waitSet(t, w, "b", "c")
	// A node that stops renewing: the memory registry prunes it, and sends
	// no event; the resync sees it gone.
	if err := reg.Register(service("v2", &registry.Node{Id: "d", Address: "127.0.0.1:4"}), registry.RegisterTTL(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	waitSet(t, w, "b", "c", "d")
	waitSet(t, w, "b", "c")
}

// rpcguard's gRPC client follows a go-micro registry: calls spread over the
// registered servers, and a bad entry is dropped on its own.
func TestNewClientOnAGoMicroRegistry(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	c := testcluster.Start(t, 2)
	var nodes []*registry.Node
	for _, n := range c.Nodes {
		nodes = append(nodes, &registry.Node{Id: n.ID, Address: n.Addr})
	}
	nodes = append(nodes, &registry.Node{Id: "bad", Address: "nowhere"})
	if err := reg.Register(service("v1", nodes...)); err != nil {
		t.Fatal(err)
	}
	src, err := gomicro.Source(reg, 0)
	if err != nil {
		t.Fatal(err)
	}
	g, err := selector.NewGroup(src)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	sel, err := g.Selector(context.Background(), "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Nodes()) != 2 {
		t.Fatalf("selector holds %v; want the 2 good nodes, the bad one dropped", sel.Nodes())
	}
	cc, err := rpcguard.NewClient("greeter", src, rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	testcluster.WaitFor(t, 10*time.Second, "calls on both servers", func() bool {
		if _, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
		return c.Nodes[0].Calls() > 0 && c.Nodes[1].Calls() > 0
	})
}
