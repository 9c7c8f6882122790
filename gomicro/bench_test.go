package gomicro_test

import (
	"context"
	"testing"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	mselector "go-micro.dev/v4/selector"
	"go-micro.dev/v4/transport"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/gomicro"
)

// BenchmarkCall: a healthy go-micro call (mucp over HTTP, one server on
// loopback), plain go-micro against the gomicro stack (client wrapper and
// rpcguard selector, no-op tracer). Both clients dial per call
// (PoolSize(0)): go-micro's connection pool stalls a call now and then
// for its whole ConnectionTimeout, which would swamp the comparison.
func BenchmarkCall(b *testing.B) {
	reg, brk := registry.NewMemoryRegistry(), broker.NewMemoryBroker()
	startMicro(b, "greeter-0", reg, brk)
	plainSel := mselector.NewSelector(mselector.Registry(reg))
	defer plainSel.Close() // go-micro's selector caches the registry until closed
	plain := client.NewClient(client.Selector(plainSel), client.Registry(reg),
		client.Broker(brk), client.Transport(transport.NewHTTPTransport()), client.ContentType("application/json"), client.PoolSize(0))
	sel, err := gomicro.NewSelector(reg)
	if err != nil {
		b.Fatal(err)
	}
	defer sel.Close()
	brkr, err := breaker.New(breaker.WithNamespace(namespace()))
	if err != nil {
		b.Fatal(err)
	}
	w, err := gomicro.NewClientWrapper(gomicro.WithBreaker(brkr))
	if err != nil {
		b.Fatal(err)
	}
	guarded := client.NewClient(client.Selector(sel), client.Registry(reg), client.Broker(brk),
		client.Transport(transport.NewHTTPTransport()), client.ContentType("application/json"), client.Wrap(w), client.PoolSize(0))
	for _, c := range []struct {
		name string
		cli  client.Client
	}{{"plain", plain}, {"gomicro", guarded}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			req := c.cli.NewRequest("greeter", "Greeter.Hello", &Req{Name: "x"})
			for b.Loop() {
				var rsp Rsp
				if err := c.cli.Call(context.Background(), req, &rsp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
