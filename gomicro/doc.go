// Package gomicro brings rpcguard to go-micro v4 (go-micro.dev/v4
// v4.11.0); start with ServiceOptions, the one line for micro.NewService.
// It translates only: the engines are rpcguard's.
//
//   - NewClientWrapper: per call a span, the breaker and rpcguard's retry
//     engine, each attempt on a node the call has not tried.
//   - NewHandlerWrapper: server span, breaker and faults for handlers.
//   - NewSelector: a go-micro selector backed by rpcguard's (strategies,
//     ejection, the per-call record), usable alone.
//   - Source: a go-micro registry (memory, etcd, consul, ...) as an rpcguard
//     selector.Source, for rpcguard.NewClient; NewRegistry: an rpcguard
//     registry as a go-micro registry, its nodes kept alive by
//     health.Registrar in place of go-micro's loop.
//   - FromMicro, ToMicro, Code: the one table between go-micro's error codes
//     and gRPC's.
//
// go-micro's defaults are global and reach the network (its default mDNS
// registry multicasts): give every go-micro service, client, selector and
// broker an explicit registry and broker.
package gomicro
