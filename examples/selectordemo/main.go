// Command selectordemo shows the selector on a real 3-node gRPC cluster in
// one process, one node of which answers every call with Unavailable.
//
// It runs the same 600 calls four ways, all with gRPC's own retry policy
// (2 attempts), and prints a table: gRPC's round_robin; the rpcguard selector
// choosing at random without a per-call record, where a retry may land on
// the failing node again (about 1 call in 9 fails); the same with the
// per-call record (selector.UnaryClientInterceptor), where a retry never goes
// back to a node the call tried; and the same with outlier ejection, where
// after 5 failures in a row the node is out and calls stop reaching it.
//
//	go run ./examples/selectordemo
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/selector"
)

const calls = 600

// retryPolicy is gRPC's own retry (service config), two attempts.
const retryPolicy = `"methodConfig":[{"name":[{"service":"rpcguard.test.Echo"}],"retryPolicy":{
	"maxAttempts":2,"initialBackoff":"0.001s","maxBackoff":"0.001s","backoffMultiplier":1,
	"retryableStatusCodes":["UNAVAILABLE"]}}]`

func main() {
	var nodes []*testcluster.Node
	for _, id := range []string{"node-0", "node-1", "node-2"} {
		n, err := testcluster.StartNode(id)
		if err != nil {
			log.Fatal(err)
		}
		defer n.Kill()
		nodes = append(nodes, n)
	}
	bad := nodes[1]
	bad.SetFault(testcluster.FailWith(codes.Unavailable))

	var sn []selector.Node
	for _, n := range nodes {
		sn = append(sn, selector.Node{ID: n.ID, Addr: n.Addr})
	}
	src, err := selector.NewStatic(sn...)
	if err != nil {
		log.Fatal(err)
	}

	var ejections atomic.Int32
	b, err := selector.NewBalancerBuilder("rpcguard_demo", selector.WithHooks(selector.Hooks{
		OnEject: func(n selector.Node, d time.Duration) {
			ejections.Add(1)
			fmt.Printf("  hook: %s ejected for %v\n", n.ID, d)
		},
	}))
	if err != nil {
		log.Fatal(err)
	}
	balancer.Register(b)

	fmt.Printf("3 nodes on 127.0.0.1; %s answers every call with Unavailable; %d calls each run.\n\n", bad.ID, calls)
	type row struct {
		name   string
		lb     string
		record bool
	}
	rows := []row{
		{"grpc round_robin", `"round_robin":{}`, false},
		{"rpcguard random, no call record", `"rpcguard_demo":{"strategy":"random"}`, false},
		{"rpcguard random + call record", `"rpcguard_demo":{"strategy":"random"}`, true},
		{"rpcguard random + record + ejection", `"rpcguard_demo":{"strategy":"random","ejection":{"consecutiveFailures":5,"baseTime":"30s"}}`, true},
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	var out []string
	for _, r := range rows {
		before := bad.Calls()
		var total int64
		for _, n := range nodes {
			total -= n.Calls()
		}
		ok := run(src, fmt.Sprintf(`{"loadBalancingConfig":[{%s}],%s}`, r.lb, retryPolicy), r.record)
		for _, n := range nodes {
			total += n.Calls()
		}
		out = append(out, fmt.Sprintf("%s\t%.1f%%\t%d\t%.2f\t", r.name, 100*float64(ok)/calls, bad.Calls()-before, float64(total)/calls))
	}
	fmt.Println()
	fmt.Fprintln(w, "balancer (all with gRPC's retry, 2 attempts)\tsuccess\tcalls reaching the bad node\tattempts per call\t")
	for _, l := range out {
		fmt.Fprintln(w, l)
	}
	_ = w.Flush()
}

// run makes the calls through a fresh client and returns how many succeeded.
func run(src selector.Source, serviceConfig string, record bool) int {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(selector.NewResolverBuilder(src)),
		grpc.WithDefaultServiceConfig(serviceConfig),
	}
	if record {
		opts = append(opts, grpc.WithUnaryInterceptor(selector.UnaryClientInterceptor()))
	}
	cc, err := grpc.NewClient("rpcguard:///echo", opts...)
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	ok := 0
	for range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := testcluster.Unary(ctx, cc, grpc.WaitForReady(true)); err == nil {
			ok++
		}
		cancel()
	}
	return ok
}
