package retry_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

// The plain Go API: each attempt goes to a node the call has not tried.
func ExamplePolicy_Do() {
	policy, err := retry.New(retry.WithMaxAttempts(3), retry.WithIdempotent("*"))
	if err != nil {
		log.Fatal(err)
	}
	sel, err := selector.New(selector.WithStrategy(selector.RoundRobin))
	if err != nil {
		log.Fatal(err)
	}
	_ = sel.Update([]selector.Node{{ID: "a", Addr: "10.0.0.1:80"}, {ID: "b", Addr: "10.0.0.2:80"}, {ID: "c", Addr: "10.0.0.3:80"}})

	err = policy.Do(context.Background(), sel, func(ctx context.Context, n selector.Node) error {
		fmt.Println("attempt on", n.ID)
		if n.ID == "c" {
			return nil
		}
		return status.Error(codes.Unavailable, "connection refused") // your client's call to n.Addr
	})
	fmt.Println("err:", err)
	// Output:
	// attempt on a
	// attempt on b
	// attempt on c
	// err: <nil>
}

// gRPC: the retry interceptors with the rpcguard_selector balancer. One of
// three nodes answers Unavailable; every call succeeds, on another node.
func ExamplePolicy_UnaryClientInterceptor() {
	var nodes []selector.Node
	var servers []*echo.Server
	for _, id := range []string{"a", "b", "c"} {
		n, err := echo.Start(id) // stand-ins for your servers
		if err != nil {
			log.Fatal(err)
		}
		defer n.Kill()
		servers = append(servers, n)
		if id == "b" {
			n.SetFault(echo.FailWith(codes.Unavailable))
		}
		nodes = append(nodes, selector.Node{ID: n.ID, Addr: n.Addr})
	}
	src, err := selector.NewStatic(nodes...)
	if err != nil {
		log.Fatal(err)
	}

	policy, err := retry.New(
		retry.WithMaxAttempts(3),
		retry.WithPerAttemptTimeout(time.Second),
		retry.WithIdempotent("/rpcguard.test.Echo/*"),
		retry.WithBudget(retry.Budget{Ratio: 0.5, MinPerSecond: 10}), // retries add at most 50% load
	)
	if err != nil {
		log.Fatal(err)
	}
	rb, err := selector.NewResolverBuilder(src)
	if err != nil {
		log.Fatal(err)
	}
	cc, err := grpc.NewClient("rpcguard:///echo",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(rb),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"rpcguard_selector": {"strategy": "round_robin"}}]}`),
		grpc.WithChainUnaryInterceptor(policy.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(policy.StreamClientInterceptor()),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()

	failed := 0
	for range 30 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); err != nil {
			failed++
		}
		cancel()
	}
	fmt.Println("failed calls:", failed)

	// When every node fails, the error keeps the status and lists the attempts.
	for _, n := range servers {
		n.SetFault(echo.FailWith(codes.Unavailable))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = echo.Unary(ctx, cc)
	var re *retry.Error
	if errors.As(err, &re) {
		fmt.Println(status.Code(err), len(re.Attempts), "attempts,", errors.Is(err, retry.ErrAttemptsExhausted))
	}
	// Output:
	// failed calls: 0
	// Unavailable 3 attempts, true
}
