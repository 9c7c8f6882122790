// The gRPC quick start: three servers register in a registry, one of them
// fails every call, and a client made by rpcguard.NewClient loses none.
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

func main() {
	reg, err := health.NewMemory() // or health/etcd's registry
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	for _, id := range []string{"a", "b", "c"} {
		s, err := echo.Start(id) // stands in for your servers
		if err != nil {
			log.Fatal(err)
		}
		defer s.Kill()
		if id == "b" {
			s.SetFault(echo.FailWith(codes.Unavailable)) // a bad node
		}
		node := selector.Node{ID: id, Addr: s.Addr}
		if err := reg.Register(context.Background(), "greeter", node, time.Minute); err != nil {
			log.Fatal(err)
		}
	}

	// Calls that may be repeated safely are retried on another node.
	policy, err := retry.New(retry.WithIdempotent("/rpcguard.test.Echo/*"))
	if err != nil {
		log.Fatal(err)
	}
	cc, err := rpcguard.NewClient("greeter", reg,
		rpcguard.WithRetry(policy),
		rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()

	failed := 0
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); err != nil {
			failed++
		}
		cancel()
	}
	fmt.Println("failed calls:", failed) // failed calls: 0
}
