package main

import (
	"google.golang.org/grpc/codes"

	"github.com/rpcguard/rpcguard/faultinject"
)

// The clients, in the order of the table: gRPC's round robin; rpcguard's
// retry interceptor alone (round robin, no ejection, no breaker); the whole
// rpcguard stack (rpcguard.NewClient).
const (
	clientBare     = "bare"
	clientRetry    = "retry"
	clientRPCGuard = "rpcguard"
)

var clients = []string{clientBare, clientRetry, clientRPCGuard, clientMicro, clientGoMicro}

// scenario is one fault, set up on a fresh cluster.
type scenario struct {
	name string
	what string // the fault, in a line
	// rules are injected on the servers for the whole run.
	rules []faultinject.Rule
	// crash, a third into the run, stops node-1's registrar without
	// deregistering and freezes it (it accepts calls and never answers):
	// the registry evicts it when its TTL passes.
	crash bool
	// nodes is the cluster's size (default 3); dead lists nodes whose
	// servers stop before the run while they stay registered.
	nodes int
	dead  []int
	// capacity, when set, makes every node serve at most this many calls
	// at once (20 ms each), refusing more with ResourceExhausted; callers
	// replaces the demo's 8 concurrent callers.
	capacity int64
	callers  int
	// recovers lifts the rules after the run, lets 6 s of light traffic
	// pass, and reports node-1's share of the next calls.
	recovers bool
	// ends lifts the rules after the run and reports how long the rpcguard
	// client's circuit takes to close (its sleep window is 1 s).
	ends bool
}

var scenarios = []scenario{
	{name: "healthy", what: "no fault"},
	{name: "dead-node", what: "node-1 killed, still registered", dead: []int{1}},
	{name: "erroring", what: "node-1 answers every call with Unavailable", rules: []faultinject.Rule{{Name: "node-1 Unavailable", Node: "node-1", Rate: 1, Code: codes.Unavailable}}},
	{name: "slow-node", what: "node-1 answers 200 ms late", rules: []faultinject.Rule{{Name: "node-1 +200ms", Node: "node-1", Rate: 1, Latency: faultinject.Fixed(200e6)}}},
	{name: "black-hole", what: "node-1 takes calls and never answers", rules: []faultinject.Rule{{Name: "node-1 hangs", Node: "node-1", Rate: 1, Hang: true}}},
	{name: "outage", what: "every node answers Unavailable: the breaker keeps the load off, then it ends", ends: true, rules: []faultinject.Rule{{Name: "all Unavailable", Rate: 1, Code: codes.Unavailable}}},
	{name: "brownout-60", what: "every node fails 60% of attempts (Unavailable): degraded, not down", rules: []faultinject.Rule{{Name: "60% Unavailable", Rate: 0.6, Code: codes.Unavailable}}},
	{name: "brownout-30", what: "every node fails 30% of attempts (Unavailable)", rules: []faultinject.Rule{{Name: "30% Unavailable", Rate: 0.3, Code: codes.Unavailable}}},
	{name: "crash-ttl", what: "node-1 freezes and stops renewing, a third into the run", crash: true},
	{name: "slow-recovers", what: "node-1 200 ms late, then healthy: is it won back?", recovers: true, rules: []faultinject.Rule{{Name: "node-1 +200ms", Node: "node-1", Rate: 1, Latency: faultinject.Fixed(200e6)}}},
	{name: "5-nodes-2-dead-1-err", what: "5 nodes: 2 killed (registered), 1 answers Unavailable", nodes: 5, dead: []int{1, 2}, rules: []faultinject.Rule{{Name: "node-3 Unavailable", Node: "node-3", Rate: 1, Code: codes.Unavailable}}},
	{name: "overload", what: "nodes take 8 calls at once (20 ms), refuse more; 32 callers", capacity: 8, callers: 32},
}
