package health_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/health/etcd"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/selector"
)

// reports collects what a registry reported dropping.
type reports struct {
	mu  sync.Mutex
	got []string
}

func (r *reports) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
}

func (r *reports) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// A node restarted under a new ID on the same port, within its old entry's
// TTL: the registry lists both entries at one address, the newer first. The
// client's selector keeps node-late, drops the ghost and reports it, and uses
// the rest of the set: calls reach node-late, and none reaches the
// deregistered node-1.
func TestSharedAddressNewerRegistrationWins(t *testing.T) {
	run := func(t *testing.T, reg health.Registry) {
		var rep reports
		ctx := context.Background()
		c := testcluster.Start(t, 2)
		late, err := echo.Start("node-late")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(late.Kill)
		for _, n := range []selector.Node{
			{ID: c.Nodes[0].ID, Addr: c.Nodes[0].Addr},
			{ID: c.Nodes[1].ID, Addr: c.Nodes[1].Addr},
			{ID: "ghost", Addr: late.Addr}, // the process that used late's port before
			{ID: late.ID, Addr: late.Addr},
		} {
			if err := reg.Register(ctx, "echo", n, 30*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		cc := testcluster.Dial(t, "rpcguard:///echo", testcluster.Resolver(t, reg, selector.WithHooks(selector.Hooks{OnDropped: func(_ string, err error) { rep.add(err.Error()) }})),
			grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"rpcguard_selector":{"strategy":"round_robin"}}]}`))
		testcluster.WaitFor(t, 10*time.Second, "calls on node-late", func() bool {
			_, _ = echo.Unary(ctx, cc, grpc.WaitForReady(true))
			return late.Calls() > 0
		})
		if err := reg.Deregister(ctx, "echo", c.Nodes[1].ID); err != nil {
			t.Fatal(err)
		}
		testcluster.WaitFor(t, 10*time.Second, "node-1 out of the listing", func() bool {
			return slices.Equal(listed(t, reg), []string{"node-late", "ghost", "node-0"})
		})
		// The client's set follows the listing: node-1 stops getting calls.
		testcluster.WaitFor(t, 10*time.Second, "the client to drop node-1", func() bool {
			before := c.Nodes[1].Calls()
			for range 10 {
				_, _ = echo.Unary(ctx, cc, grpc.WaitForReady(true))
			}
			return c.Nodes[1].Calls() == before
		})
		before := []int64{c.Nodes[0].Calls(), late.Calls()}
		for range 20 {
			if _, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); err != nil {
				t.Fatal(err)
			}
		}
		if c.Nodes[0].Calls() == before[0] || late.Calls() == before[1] {
			t.Fatalf("20 calls did not reach both node-0 and node-late")
		}
		got := rep.all()
		if len(got) == 0 || !strings.Contains(got[0], `"node-late" and "ghost" share the address`) {
			t.Fatalf("reports %q, want the ghost dropped for node-late", got)
		}
	}
	t.Run("memory", func(t *testing.T) {
		m, err := health.NewMemory(health.WithTick(20 * time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		run(t, m)
	})
	t.Run("etcd", func(t *testing.T) {
		run(t, etcdBackend(t, etcd.Hooks{}).reg)
	})
}

// etcd rebuilt from empty data starts its revisions over: a watch resuming
// from the revision it had seen would wait for events that never come. The
// registry notices and lists again.
func TestEtcdRelistsAfterRebuildFromEmptyData(t *testing.T) {
	var relists reports
	b := etcdBackend(t, etcd.Hooks{OnWatchError: func(_ string, err error) { relists.add(err.Error()) }},
		etcd.WithResync(100*time.Millisecond))
	reg, srv := b.reg, b.etcd
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	ctx := context.Background()
	if err := reg.Register(ctx, "echo", selector.Node{ID: "old", Addr: "127.0.0.1:1"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for i := range 30 { // move the revision well past what the rebuilt etcd will reach
		if _, err := cli.Put(ctx, fmt.Sprintf("/other/%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	w, err := reg.Watch(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if nodes, err := w.Next(); err != nil || len(nodes) != 1 {
		t.Fatalf("first set: %v, %v", nodes, err)
	}
	srv.Stop()
	if err := srv.RestartEmpty(); err != nil {
		t.Fatal(err)
	}
	// Registrations into the rebuilt cluster (the client reconnects on its
	// own; retry until it has).
	for _, id := range []string{"b", "c"} {
		node := selector.Node{ID: id, Addr: "127.0.0.1:" + map[string]string{"b": "2", "c": "3"}[id]}
		testcluster.WaitFor(t, 15*time.Second, "registering "+id+" in the rebuilt etcd", func() bool {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			return reg.Register(rctx, "echo", node, 10*time.Second) == nil
		})
	}
	got := make(chan []selector.Node, 1)
	go func() {
		for {
			nodes, err := w.Next()
			if err != nil {
				close(got)
				return
			}
			if len(nodes) == 2 {
				got <- nodes
				return
			}
		}
	}()
	select {
	case nodes := <-got:
		if nodes[0].ID != "c" || nodes[1].ID != "b" {
			t.Fatalf("after the rebuild the watch holds %v, want c and b (newest first)", nodes)
		}
	case <-time.After(15 * time.Second):
		w.Stop()
		t.Fatalf("the watch never saw the rebuilt cluster's nodes (reports: %q)", relists.all())
	}
	found := false
	for _, r := range relists.all() {
		found = found || strings.Contains(r, "lost its history")
	}
	if !found {
		t.Fatalf("no report of the lost history among %q", relists.all())
	}
}

// Entries whose IDs Register would refuse are skipped and reported, like
// any other malformed entry.
func TestEtcdSkipsEntriesWithBadIDs(t *testing.T) {
	var rep reports
	b := etcdBackend(t, etcd.Hooks{OnMalformed: func(key string, err error) { rep.add(key) }})
	raw, err := clientv3.New(clientv3.Config{Endpoints: []string{b.etcd.Endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx := context.Background()
	for _, id := range []string{"with space", "x/y", "tab\there"} {
		if _, err := raw.Put(ctx, etcd.DefaultPrefix+"echo/"+id, fmt.Sprintf(`{"id":%q,"addr":"127.0.0.1:7"}`, id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.reg.Register(ctx, "echo", selector.Node{ID: "good", Addr: "127.0.0.1:8"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, b.reg); !slices.Equal(got, []string{"good"}) {
		t.Fatalf("List: %v, want only the good node", got)
	}
	if got := rep.all(); len(got) != 3 {
		t.Fatalf("reported %q, want the 3 bad IDs", got)
	}
}

// A closed memory registry: a second Close is harmless; Register and
// Watch fail (a node registered then would never expire, a watch never
// end: both were accepted); a watch opened before Close ends; List and
// Deregister still answer.
func TestMemoryUseAfterClose(t *testing.T) {
	m, err := health.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	node := selector.Node{ID: "a", Addr: "127.0.0.1:1"}
	if err := m.Register(ctx, "svc", node, time.Minute); err != nil {
		t.Fatal(err)
	}
	w, err := m.Watch(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Next(); !errors.Is(err, selector.ErrClosed) {
		t.Fatalf("a watch opened before Close: %v, want selector.ErrClosed", err)
	}
	if err := m.Register(ctx, "other", node, time.Minute); !errors.Is(err, selector.ErrClosed) {
		t.Fatalf("Register after Close: %v, want selector.ErrClosed", err)
	}
	if _, err := m.Watch(ctx, "other"); !errors.Is(err, selector.ErrClosed) {
		t.Fatalf("Watch after Close: %v, want selector.ErrClosed", err)
	}
	if nodes, err := m.List(ctx, "svc"); err != nil || len(nodes) != 1 {
		t.Fatalf("List after Close: %v, %v; want the one node", nodes, err)
	}
	if err := m.Deregister(ctx, "svc", "a"); err != nil {
		t.Fatalf("Deregister after Close: %v", err)
	}
}

// WithTTL alone works: the interval follows the TTL (a third of it).
func TestTTLAloneSetsTheInterval(t *testing.T) {
	b := memoryBackend(t)
	r, err := health.NewRegistrar(b.reg, "echo", selector.Node{ID: "a", Addr: "127.0.0.1:1"}, health.WithTTL(5*time.Second))
	if err != nil {
		t.Fatalf("WithTTL(5s) alone: %v", err)
	}
	_ = r
}
