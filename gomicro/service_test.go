package gomicro_test

import (
	"context"
	"testing"
	"time"

	micro "go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
)

// The one line: a go-micro service built with ServiceOptions calls a
// service with a dead node registered, and no call fails.
func TestServiceOptions(t *testing.T) {
	reg, brk, tr := registry.NewMemoryRegistry(), broker.NewMemoryBroker(), transport.NewHTTPTransport()
	for _, id := range []string{"greeter-0", "greeter-1"} {
		startMicro(t, id, reg, brk)
	}
	dead := &registry.Node{Id: "greeter-dead", Address: testcluster.DeadAddr(t)}
	if err := reg.Register(&registry.Service{Name: "greeter", Nodes: []*registry.Node{dead}}); err != nil {
		t.Fatal(err)
	}
	policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithPerAttemptTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	b, err := breaker.New(breaker.WithNamespace(namespace()))
	if err != nil {
		t.Fatal(err)
	}
	rg, closeRG, err := gomicro.ServiceOptions(reg, gomicro.WithRetry(policy), gomicro.WithBreaker(b))
	if err != nil {
		t.Fatal(err)
	}
	defer closeRG()
	// Everything explicit: go-micro's defaults are global (never
	// service.Init() in a test: it parses flags).
	srv := server.NewServer(server.Name("caller"), server.Id("caller-0"), server.Address("127.0.0.1:0"),
		server.Registry(reg), server.Broker(brk), server.Transport(tr))
	cli := client.NewClient(client.Registry(reg), client.Broker(brk), client.Transport(tr), client.ContentType("application/json"))
	svc := micro.NewService(append([]micro.Option{micro.Name("caller"), micro.Client(cli), micro.Server(srv),
		micro.Registry(reg), micro.Broker(brk), micro.Transport(tr)}, rg...)...)
	for i := range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var rsp Rsp
		err := svc.Client().Call(ctx, svc.Client().NewRequest("greeter", "Greeter.Hello", &Req{Name: "x"}), &rsp)
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}
