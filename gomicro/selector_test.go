package gomicro_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"

	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/selector"
)

// Greeter is a go-micro handler that counts its calls and may fail them.
type Greeter struct {
	id      string
	calls   atomic.Int64
	fail    atomic.Pointer[error]
	maxLeft atomic.Int64 // the longest time left to a call's deadline seen, in ns; -1 for a call without one
}

// Req and Rsp travel as JSON.
type Req struct{ Name string }

// Rsp is Greeter's answer.
type Rsp struct{ From string }

// Hello answers with the server's ID, or the error set with failWith.
func (g *Greeter) Hello(ctx context.Context, req *Req, rsp *Rsp) error {
	g.calls.Add(1)
	left := int64(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = int64(time.Until(dl))
	}
	for old := g.maxLeft.Load(); (left == -1 || left > old) && old != -1 && !g.maxLeft.CompareAndSwap(old, left); old = g.maxLeft.Load() {
	}
	if req.Name == "missing" {
		return merrors.NotFound(g.id, "no one called %q", req.Name)
	}
	if e := g.fail.Load(); e != nil {
		return *e
	}
	rsp.From = g.id
	return nil
}

// Chat answers every message of a stream with the server's ID.
func (g *Greeter) Chat(_ context.Context, stream server.Stream) error {
	for {
		var req Req
		if err := stream.Recv(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := stream.Send(&Rsp{From: g.id}); err != nil {
			return err
		}
	}
}

func (g *Greeter) failWith(err error) {
	if err == nil {
		g.fail.Store(nil)
		return
	}
	g.fail.Store(&err)
}

type triedKey struct{}

// tried records the nodes of one call's attempts.
type tried struct {
	mu  sync.Mutex
	ids []string
}

// With go-micro's own retry loop (Retries(3), RetryAlways) and a dead node
// still registered, the rpcguard selector sends no attempt back to a node
// its call tried, ejects the dead node, and no call fails. (go-micro's
// default selector sends about 1 call in 15 back to a node it tried, and
// keeps picking the dead node.)
func TestSelectorInGoMicrosRetryLoop(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	brk := broker.NewMemoryBroker()
	for i := range 3 {
		startMicro(t, fmt.Sprintf("greeter-%d", i), reg, brk)
	}
	dead := &registry.Node{Id: "greeter-dead", Address: testcluster.DeadAddr(t)}
	if err := reg.Register(&registry.Service{Name: "greeter", Nodes: []*registry.Node{dead}}); err != nil {
		t.Fatal(err)
	}
	sel, err := gomicro.NewSelector(reg)
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Close()
	record := func(cf client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			if tr, ok := ctx.Value(triedKey{}).(*tried); ok {
				tr.mu.Lock()
				tr.ids = append(tr.ids, node.Id)
				tr.mu.Unlock()
			}
			return cf(ctx, node, req, rsp, opts)
		}
	}
	cli := client.NewClient(client.Selector(sel), client.Registry(reg), client.Broker(brk),
		client.Transport(transport.NewHTTPTransport()), client.ContentType("application/json"),
		client.Retries(3), client.Retry(client.RetryAlways), client.WrapCall(record),
		// go-micro bounds an attempt only by its ConnectionTimeout (5 s by
		// default, whatever the call's deadline): an attempt stalled in its
		// transport gives up after 1 s and is retried elsewhere.
		func(o *client.Options) { o.CallOptions.ConnectionTimeout = time.Second })
	failed, revisits := 0, 0
	for i := range 200 {
		tr := &tried{}
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), triedKey{}, tr), 5*time.Second)
		var rsp Rsp
		err := cli.Call(ctx, cli.NewRequest("greeter", "Greeter.Hello", &Req{Name: "x"}), &rsp)
		cancel()
		tr.mu.Lock()
		if err != nil {
			failed++
			t.Logf("call %d: %v (attempts on %v)", i, err, tr.ids)
		}
		seen := map[string]bool{}
		for _, id := range tr.ids {
			if seen[id] {
				revisits++
			}
			seen[id] = true
		}
		tr.mu.Unlock()
	}
	if failed != 0 || revisits != 0 {
		t.Fatalf("%d of 200 calls failed and %d attempts went back to a node their call tried; want none", failed, revisits)
	}
}

// TestSubsetOnGoMicro: gomicro's selector subsets a fleet as the gRPC
// balancer does: with Subset{Size: 3} of 9 nodes, every call lands on the
// client's subset (about 3 nodes), never on the others.
func TestSubsetOnGoMicro(t *testing.T) {
	f := &fleet{k: mucp, reg: newMicroRegistry(), brk: newMicroBroker(),
		sopts: []selector.Option{selector.WithStrategy(selector.PowerOfTwo), selector.WithSubset(selector.Subset{Size: 3, Client: 4})}}
	for i := range 9 {
		f.servers = append(f.servers, f.k.start(t, fmt.Sprintf("greeter-%d", i), f.reg, f.brk))
	}
	f.cli = f.client(t, nil)
	for range 200 {
		if _, err := f.call("x"); err != nil {
			t.Fatal(err)
		}
	}
	used := 0
	for _, g := range f.servers {
		if g.calls.Load() > 0 {
			used++
		}
	}
	if used < 2 || used > 5 {
		t.Errorf("calls went to %d of 9 nodes, want the subset of about 3", used)
	}
}
