package selector_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/selector"
)

// The plain Go API, for any client: pick a node for the call, call it,
// report the outcome. The per-call record makes the second attempt go to a
// node the call has not tried.
func ExampleSelector() {
	sel, err := selector.New(
		selector.WithStrategy(selector.RoundRobin),
		selector.WithEjection(selector.DefaultEjection()),
	)
	if err != nil {
		log.Fatal(err)
	}
	err = sel.Update([]selector.Node{
		{ID: "a", Addr: "10.0.0.1:8080"},
		{ID: "b", Addr: "10.0.0.2:8080"},
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx := selector.NewRecord(context.Background()) // one logical call
	for attempt := 1; ; attempt++ {
		p, err := sel.Pick(ctx)
		if errors.Is(err, selector.ErrAllTried) {
			fmt.Println("every node tried:", status.Code(err))
			return
		}
		callErr := status.Error(codes.Unavailable, "connection refused") // call p.Node.Addr here
		p.Done(callErr, true)
		fmt.Printf("attempt %d on %s: %v\n", attempt, p.Node.ID, status.Code(callErr))
	}
	// Output:
	// attempt 1 on a: Unavailable
	// attempt 2 on b: Unavailable
	// every node tried: Unavailable
}

// gRPC: the resolver takes nodes from a Source, the balancer is chosen by
// the service config, and the interceptor gives each call its record.
func ExampleNewResolverBuilder() {
	// Three real servers on 127.0.0.1 (a stand-in for your service).
	var nodes []selector.Node
	for _, id := range []string{"a", "b", "c"} {
		n, err := echo.Start(id)
		if err != nil {
			log.Fatal(err)
		}
		defer n.Kill()
		nodes = append(nodes, selector.Node{ID: n.ID, Addr: n.Addr})
	}
	src, err := selector.NewStatic(nodes...)
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
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"rpcguard_selector": {
			"strategy": "round_robin",
			"ejection": {"consecutiveFailures": 5, "baseTime": "30s"}
		}}]}`),
		grpc.WithUnaryInterceptor(selector.UnaryClientInterceptor()),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()

	// Round robin reaches every node once they are connected.
	seen := map[string]bool{}
	for len(seen) < 3 {
		id, err := echo.Unary(context.Background(), cc, grpc.WaitForReady(true))
		if err != nil {
			log.Fatal(err)
		}
		seen[id] = true
	}

	// One call, three attempts: each goes to a node this call has not tried.
	ctx := selector.NewRecord(context.Background())
	var served []string
	for range 3 {
		id, err := echo.Unary(ctx, cc, grpc.WaitForReady(true))
		if err != nil {
			log.Fatal(err)
		}
		served = append(served, id)
	}
	slices.Sort(served)
	fmt.Println(served)
	_, err = echo.Unary(ctx, cc)
	fmt.Println(errors.Is(err, selector.ErrAllTried))
	// Output:
	// [a b c]
	// true
}
