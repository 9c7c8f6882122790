// Package selector chooses the node an RPC attempt goes to; for a gRPC
// client, start with rpcguard.NewClient, which installs its resolver and
// balancer with the rest of the stack.
//
// It exists because node choice decides whether a retry helps: a retry that
// lands on the node that just failed is wasted, a round robin that restarts at
// every call is not a round robin, and a node that keeps failing should stop
// receiving traffic for a while. Package selector makes that choice explicit,
// observable and shared by every transport:
//
//   - [Node] and a [Selector] whose node set can change while calls run
//     (picks never block on updates).
//   - Strategies: [Random], [RoundRobin] (its position persists across calls)
//     and [PowerOfTwo] (power of two choices, least loaded: in-flight count
//     weighted by an EWMA of latency); filters on node metadata ([WithFilter]).
//   - A per-call record carried in the call's [context.Context] ([NewRecord]):
//     the nodes this call already tried. A pick avoids them; when all were
//     tried the pick fails with [ErrAllTried], or, with [WithReuseTried],
//     reuses the one that failed least recently.
//   - Outcome feedback ([Picked.Done]) and outlier ejection ([Ejection]):
//     consecutive failures eject a node for a growing time, never more than a
//     maximum share of the nodes; hooks report ejections and returns.
//
// The plain Go API is [Selector.Pick] followed by [Picked.Done]. For gRPC the
// package provides a balancer ([BalancerName], configured through the service
// config's loadBalancingConfig) and a resolver ([NewResolverBuilder]) that
// takes nodes from a [Source].
//
// selector imports only package outcome (the one outcome type and code
// table, which the breaker reads too) and internal helpers: it is the floor
// the retry, breaker, tracing, health and go-micro packages stand on. Its
// Record is the per-call record every layer shares. A Group feeds a Selector
// per service from a Source outside gRPC, and Poll makes a Source of any
// registry that can list a service's nodes.
package selector
