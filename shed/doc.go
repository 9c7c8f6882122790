// Package shed protects a server from more work than it can do: it
// refuses, at once and cheaply, the calls that have already waited too
// long in a standing queue, instead of letting every call queue until all
// of them are late.
//
// The signal is the queueing delay, as CoDel (Nichols and Jacobson)
// measures it for packets and as large RPC fleets apply it to request
// queues: when the calls of at least an interval (100 ms, or 20 service
// times) have each waited longer than a target (5 ms, or one service time)
// before their handler ran, the queue is standing, not a burst; from then
// on every call that waited longer than the target is refused with
// ResourceExhausted (HTTP 429, go-micro 429) and a retry pushback, until an
// interval passes in which no call waited that long. The calls that are
// served keep about their unloaded latency, and the server keeps serving
// at its capacity: refusing a call costs microseconds.
//
// Why not a concurrency limit: a Go server that takes more than its CPUs
// can do queues in the Go scheduler's run queue, before any interceptor or
// handler runs; a limit on the handlers in flight never sees that queue
// (with one CPU there is rarely more than one handler running), and
// measured here it hardly refused while the answered calls' latency grew
// to a second. The wait before the handler is what grows.
//
// Where the wait comes from: gRPC tells when a stream's headers arrived,
// before the stream waits for a goroutine and a CPU: the Limiter's Tap
// (grpc.InTapHandle, in ServerOptions) stamps it. Other transports do not
// (net/http, go-micro): there the wait of a call is estimated as the 90th
// percentile of how long the process's goroutines waited to run over the
// last 10 ms (runtime/metrics /sched/latencies), a coarser signal for the
// same queue. A transport that knows arrival times passes them with
// Arrived.
//
// It is off unless used: it never refuses a call that did not wait, but a
// machine whose CPUs other processes keep busy makes every call wait, and
// a server there refuses what it cannot serve in time.
//
// Refusals are load, not breakage: rpcguard's client breaker does not count
// ResourceExhausted, its selector does not eject for it, and its retry
// engine waits the pushback and its adaptive client limit backs off.
//
// A Limiter starts no goroutine; Acquire and Release allocate nothing (the
// gRPC tap adds one context per stream).
package shed
