// Command selectordemo shows the selector on a real 3-node gRPC cluster in
// one process, one node of which answers every call with Unavailable.
//
// It runs the same 600 calls six ways, each with 2 attempts, and prints a
// table: gRPC's round_robin with gRPC's own retry policy; the rpcguard
// selector choosing at random without a per-call record, where a retry may
// land on the failing node again (about 1 call in 9 fails); the same with the
// per-call record (selector.UnaryClientInterceptor), where a retry never goes
// back to a node the call tried; the same with outlier ejection, where after
// 5 failures in a row the node is out and calls stop reaching it; and
// rpcguard's own retry interceptor instead of gRPC's, without and with
// ejection. Without ejection a third of the calls need a retry; the calls
// that succeed earn the retry budget back (half a retry each), so the budget
// lets those retries through, while an outage, which earns nothing, would be
// held to about one attempt per call; ejection removes the need.
//
//	go run ./examples/selectordemo
package main

import (
	"context"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

const calls = 600

// grpcRetry is gRPC's own retry (service config), two attempts.
const grpcRetry = `,"methodConfig":[{"name":[{"service":"rpcguard.test.Echo"}],"retryPolicy":{
	"maxAttempts":2,"initialBackoff":"0.001s","maxBackoff":"0.001s","backoffMultiplier":1,
	"retryableStatusCodes":["UNAVAILABLE"]}}]`

func main() {
	var nodes []*echo.Server
	for _, id := range []string{"node-0", "node-1", "node-2"} {
		n, err := echo.Start(id)
		if err != nil {
			log.Fatal(err)
		}
		defer n.Kill()
		nodes = append(nodes, n)
	}
	bad := nodes[1]
	bad.SetFault(echo.FailWith(codes.Unavailable))

	var sn []selector.Node
	for _, n := range nodes {
		sn = append(sn, selector.Node{ID: n.ID, Addr: n.Addr})
	}
	src, err := selector.NewStatic(sn...)
	if err != nil {
		log.Fatal(err)
	}

	var ejections atomic.Int32
	hooks := selector.WithHooks(selector.Hooks{
		OnEject: func(selector.Node, time.Duration) { ejections.Add(1) }, // counted per row below
	})

	fmt.Printf("3 nodes on 127.0.0.1; %s answers every call with Unavailable; %d calls each run.\n\n", bad.ID, calls)
	// One retry policy (and so one budget) per client.
	rpcguardRetry := func() grpc.UnaryClientInterceptor {
		policy, err := retry.New(retry.WithMaxAttempts(2), retry.WithIdempotent("*"))
		if err != nil {
			log.Fatal(err)
		}
		return policy.UnaryClientInterceptor()
	}
	record := selector.UnaryClientInterceptor()
	type row struct {
		name        string
		lb          string
		retryPolicy string // gRPC's own, or "" when rpcguard's retry runs
		interceptor grpc.UnaryClientInterceptor
	}
	rows := []row{
		{"grpc round_robin + grpc retry", `"round_robin":{}`, grpcRetry, nil},
		{"rpcguard random, no call record + grpc retry", `"rpcguard_selector":{"strategy":"random"}`, grpcRetry, nil},
		{"rpcguard random + call record + grpc retry", `"rpcguard_selector":{"strategy":"random"}`, grpcRetry, record},
		{"rpcguard random + ejection + grpc retry", `"rpcguard_selector":{"strategy":"random","ejection":{"consecutiveFailures":5,"baseTime":"30s"}}`, grpcRetry, record},
		{"rpcguard random + rpcguard retry (default budget)", `"rpcguard_selector":{"strategy":"random"}`, "", rpcguardRetry()},
		{"rpcguard random + ejection + rpcguard retry", `"rpcguard_selector":{"strategy":"random","ejection":{"consecutiveFailures":5,"baseTime":"30s"}}`, "", rpcguardRetry()},
	}
	var out []string
	for _, r := range rows {
		ejectedBefore := ejections.Load()
		before := bad.Calls()
		var total int64
		for _, n := range nodes {
			total -= n.Calls()
		}
		ok := run(src, hooks, fmt.Sprintf(`{"loadBalancingConfig":[{%s}]%s}`, r.lb, r.retryPolicy), r.interceptor)
		for _, n := range nodes {
			total += n.Calls()
		}
		out = append(out, fmt.Sprintf("%-50s %7.1f%% %9d %9.2f %9d", r.name, 100*float64(ok)/calls,
			bad.Calls()-before, float64(total)/calls, ejections.Load()-ejectedBefore))
	}
	fmt.Printf("%-50s %8s %9s %9s %9s\n", "balancer + retry (2 attempts)", "success", "bad node", "attempts", "ejected")
	for _, l := range out {
		fmt.Println(l)
	}
	fmt.Println("\nbad node: calls that reached it; attempts: per call, that reached a server;")
	fmt.Println("ejected: times the OnEject hook ran.")
}

// run makes the calls through a fresh client and returns how many succeeded.
func run(src selector.Source, hooks selector.Option, serviceConfig string, interceptor grpc.UnaryClientInterceptor) int {
	rb, err := selector.NewResolverBuilder(src, hooks) // the hooks reach the rpcguard_selector balancer
	if err != nil {
		log.Fatal(err)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(rb),
		grpc.WithDefaultServiceConfig(serviceConfig),
	}
	if interceptor != nil {
		opts = append(opts, grpc.WithUnaryInterceptor(interceptor))
	}
	cc, err := grpc.NewClient("rpcguard:///echo", opts...)
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	ok := 0
	for range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); err == nil {
			ok++
		}
		cancel()
	}
	return ok
}
