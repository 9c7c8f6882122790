package health_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/selector"
)

// A server registers itself with a TTL and renews it; clients resolve the
// service through the same registry and follow its changes.
func ExampleRegistrar() {
	reg, err := health.NewMemory() // or etcd.New(client)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	server, err := echo.Start("node-a") // your gRPC server
	if err != nil {
		log.Fatal(err)
	}
	defer server.Kill()
	r, err := health.NewRegistrar(reg, "greeter", selector.Node{ID: server.ID, Addr: server.Addr},
		health.WithTTL(30*time.Second), health.WithInterval(10*time.Second), health.WithDrain(0))
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		log.Fatal(err)
	}

	rb, err := selector.NewResolverBuilder(reg)
	if err != nil {
		log.Fatal(err)
	}
	cc, err := grpc.NewClient("rpcguard:///greeter",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(rb),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"rpcguard_selector": {}}]}`))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	id, err := echo.Unary(context.Background(), cc, grpc.WaitForReady(true))
	fmt.Println(id, err)

	// On shutdown: deregister and drain first, then stop the server.
	if err := r.Stop(context.Background()); err != nil {
		log.Fatal(err)
	}
	nodes, _ := reg.List(context.Background(), "greeter")
	fmt.Println(len(nodes), "nodes left")
	// Output:
	// node-a <nil>
	// 0 nodes left
}
