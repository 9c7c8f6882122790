package gomicro_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/go-micro/plugins/v4/registry/consul"
	consulapi "github.com/hashicorp/consul/api"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
)

// go-micro services on the consul registry plugin (registry/consul v1.2.1)
// and a real Consul agent, with a dead node registered: every call
// succeeds, at most 1.05 attempts per call once it is ejected. Opt-in:
//
//	RPCGUARD_CONSUL_ADDR=127.0.0.1:8500 go test -run Consul ./gomicro
//
// with an agent started as the README says (consul agent -dev, every
// address on 127.0.0.1).
func TestGoMicroOnConsul(t *testing.T) {
	addr := os.Getenv("RPCGUARD_CONSUL_ADDR")
	if addr == "" {
		t.Skip("set RPCGUARD_CONSUL_ADDR to run against a real Consul agent")
	}
	// Our own HTTP transport, whose idle connections the test closes (the
	// registry has no Close).
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	reg := consul.NewRegistry(registry.Addrs(addr), consul.Config(&consulapi.Config{HttpClient: &http.Client{Transport: tr}}))
	name := fmt.Sprintf("greeter-%d", time.Now().UnixNano()) // nothing left from another run
	brk := newMicroBroker()
	f := &fleet{k: mucp, reg: reg, brk: brk, service: name}
	for i := range 2 {
		f.servers = append(f.servers, mucp.start(t, fmt.Sprintf("greeter-%d", i), reg, brk, server.Name(name), server.RegisterTTL(10*time.Second)))
	}
	dead := &registry.Node{Id: name + "-dead", Address: testcluster.DeadAddr(t)}
	if err := reg.Register(&registry.Service{Name: name, Nodes: []*registry.Node{dead}}, registry.RegisterTTL(time.Minute)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Deregister(&registry.Service{Name: name, Nodes: []*registry.Node{dead}}) })
	policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithPerAttemptTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	f.cli = f.client(t, []gomicro.Option{gomicro.WithRetry(policy)})
	f.routesAround(t, 100, 200)
}
