package gomicro_test

import (
	"testing"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"

	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/metrics"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

// A metrics.Observer sees a go-micro client's nodes under the service's
// name: the dead node registered among them is out of the picks
// (unreachable: it refuses connections).
func TestGoMicroClientObserved(t *testing.T) {
	f := &fleet{k: mucp, reg: newMicroRegistry(), brk: newMicroBroker()}
	for _, id := range []string{"greeter-0", "greeter-1"} {
		f.servers = append(f.servers, mucp.start(t, id, f.reg, f.brk))
	}
	dead := &registry.Node{Id: "greeter-dead", Address: testcluster.DeadAddr(t)}
	if err := f.reg.Register(&registry.Service{Name: "greeter", Nodes: []*registry.Node{dead}}); err != nil {
		t.Fatal(err)
	}
	obs := metrics.New()
	sel, err := gomicro.NewSelector(f.reg, obs.Selector("go-micro"),
		selector.WithStrategy(selector.RoundRobin), selector.WithEjection(selector.DefaultEjection()))
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Close()
	policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithPerAttemptTimeout(time.Second), retry.WithHooks(obs.RetryHooks("greeter")))
	if err != nil {
		t.Fatal(err)
	}
	w, err := gomicro.NewClientWrapper(gomicro.WithRetry(policy), gomicro.WithBreaker(newBreaker(t)))
	if err != nil {
		t.Fatal(err)
	}
	f.cli = mucp.client(client.PoolSize(0), client.Selector(sel), client.Registry(f.reg), client.Broker(f.brk),
		client.ContentType(mucp.contentType), client.Wrap(w))
	for i := range 50 {
		if _, err := f.call("x"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	snap := obs.Snapshot()
	if len(snap.Clients) != 1 || snap.Clients[0].Service != "greeter" || len(snap.Clients[0].Nodes) != 3 {
		t.Fatalf("observed %+v; want the greeter service's 3 nodes", snap.Clients)
	}
	for _, n := range snap.Clients[0].Nodes {
		if want := n.Node.ID == "greeter-dead"; n.Unreachable != want || n.Ejected {
			t.Errorf("%s unreachable = %v, ejected = %v; want %v, false", n.Node.ID, n.Unreachable, n.Ejected, want)
		}
	}
}
