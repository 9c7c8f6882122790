// Package faultinject injects faults deterministically (start with New, and
// its UnaryServerInterceptor on a server of package echo or yours): errors (a gRPC code
// or an HTTP status), latency (fixed or drawn from a distribution),
// black holes (the call is accepted and never answered), aborted
// connections, and nodes taken down, each by service, method and node,
// with a rate in [0, 1] and a seed.
//
// It exists so that people can watch their client survive faults, and test
// their own services against them: an Injector goes on a gRPC server
// (UnaryServerInterceptor), a gRPC client (UnaryClientInterceptor, which
// sees the node the rpcguard selector picked), a net/http server
// (Middleware), or any code (Apply). Rules can change while calls run
// (SetRules, Script).
//
// Decisions are deterministic: the n-th call that a rule matches is faulted
// or not according to the seed, the rule's index and n alone, so a test
// that makes its calls in order sees the same faults on every run.
//
// Activation by request header (WithHeaderActivation) is for tests only: it
// lets a caller fault its own request by naming rules in a header. It is off
// unless configured; never enable it where untrusted callers can reach.
package faultinject
