package main

import (
	"google.golang.org/grpc/codes"

	"github.com/rpcguard/rpcguard/faultinject"
)

const (
	clientBare     = "bare"
	clientRPCGuard = "rpcguard"
)

// scenario is one fault, set up on a fresh cluster.
type scenario struct {
	name string
	// rules are injected on the servers for the whole run.
	rules []faultinject.Rule
	// kill stops node-1's server before the run; it stays registered.
	kill bool
	// crash, a third into the run, stops node-1's registrar without
	// deregistering and freezes it (it accepts calls and never answers):
	// the registry evicts it when its TTL passes.
	crash bool
}

var scenarios = []scenario{
	{name: "healthy"},
	{name: "dead-node", kill: true},
	{name: "erroring", rules: []faultinject.Rule{{Name: "node-1 Unavailable", Node: "node-1", Rate: 1, Code: codes.Unavailable}}},
	{name: "slow-node", rules: []faultinject.Rule{{Name: "node-1 +200ms", Node: "node-1", Rate: 1, Latency: faultinject.Fixed(200e6)}}},
	{name: "black-hole", rules: []faultinject.Rule{{Name: "node-1 hangs", Node: "node-1", Rate: 1, Hang: true}}},
	{name: "outage", rules: []faultinject.Rule{{Name: "all Unavailable", Rate: 1, Code: codes.Unavailable}}},
	{name: "crash-ttl", crash: true},
}
