// The go-micro quick start: a go-micro v4 client with rpcguard (one line,
// gomicro.ServiceOptions) calls a service of two nodes, one of which died
// without deregistering, and loses no call.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	micro "go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"

	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/retry"
)

// Greeter is the service's handler.
type Greeter struct{}

// Req and Rsp travel as JSON.
type Req struct{ Name string }

// Rsp is the answer.
type Rsp struct{ Msg string }

// Hello greets.
func (Greeter) Hello(_ context.Context, req *Req, rsp *Rsp) error {
	rsp.Msg = "hello " + req.Name
	return nil
}

func main() {
	logger.DefaultLogger = logger.NewLogger(logger.WithLevel(logger.WarnLevel))
	// Explicit registry, broker and transport: go-micro's defaults are
	// global and its default registry multicasts.
	reg, brk, tr := registry.NewMemoryRegistry(), broker.NewMemoryBroker(), transport.NewHTTPTransport()

	srv := server.NewServer(server.Name("greeter"), server.Id("live"), server.Address("127.0.0.1:0"),
		server.Registry(reg), server.Broker(brk), server.Transport(tr))
	if err := srv.Handle(srv.NewHandler(Greeter{})); err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	// A node that died without deregistering: its port refuses connections.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	if err := reg.Register(&registry.Service{Name: "greeter", Nodes: []*registry.Node{{Id: "dead", Address: dead}}}); err != nil {
		log.Fatal(err)
	}

	// The client service: rpcguard in one line, retries for what may be
	// repeated, each attempt bounded (and the server told so).
	policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithPerAttemptTimeout(time.Second))
	if err != nil {
		log.Fatal(err)
	}
	rg, closeRG, err := gomicro.ServiceOptions(reg, gomicro.WithRetry(policy))
	if err != nil {
		log.Fatal(err)
	}
	defer closeRG()
	cli := client.NewClient(client.Registry(reg), client.Broker(brk), client.Transport(tr), client.ContentType("application/json"))
	caller := server.NewServer(server.Name("caller"), server.Address("127.0.0.1:0"),
		server.Registry(reg), server.Broker(brk), server.Transport(tr))
	svc := micro.NewService(append([]micro.Option{micro.Name("caller"),
		micro.Client(cli), micro.Server(caller), micro.Registry(reg), micro.Broker(brk), micro.Transport(tr)}, rg...)...)

	failed := 0
	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var rsp Rsp
		if err := svc.Client().Call(ctx, svc.Client().NewRequest("greeter", "Greeter.Hello", &Req{Name: "ada"}), &rsp); err != nil {
			failed++
		}
		cancel()
	}
	fmt.Println("failed calls:", failed) // failed calls: 0
}
