package rpcguard_test

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

// The quick start: servers register in a registry; a client resolves them
// and calls through the whole stack. One of the three nodes fails every
// call, and no call fails.
func ExampleNewClient() {
	reg, err := health.NewMemory()
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	for _, id := range []string{"a", "b", "c"} {
		n, err := echo.Start(id) // your servers
		if err != nil {
			log.Fatal(err)
		}
		defer n.Kill()
		if id == "b" {
			n.SetFault(echo.FailWith(codes.Unavailable))
		}
		if err := reg.Register(context.Background(), "greeter", selector.Node{ID: id, Addr: n.Addr}, time.Minute); err != nil {
			log.Fatal(err)
		}
	}

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
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); err != nil {
			failed++
		}
		cancel()
	}
	fmt.Println("failed:", failed)
	// Output: failed: 0
}
