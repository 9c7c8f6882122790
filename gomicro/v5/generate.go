package gomicro

// The files of this package that start "Code generated" are package
// github.com/rpcguard/rpcguard/gomicro (go-micro v4) rewritten for
// go-micro.dev/v5 by internal/gomicrogen: edit them there and run
// go generate ./gomicro/v5 (CI fails when they are stale). So are the v5
// quick start, docs/quickstart/gomicro5, and the fault demo's go-micro rows
// for v5, examples/faultdemo/microrows/v5.
//
// Written here by hand: etcd_test.go, for go-micro v5's core etcd registry,
// which keeps a node alive with one long-lived etcd KeepAlive rather than
// renewals: a process that freezes but lives stays registered whatever its
// TTL. rpcguard's client routes around it (a per-attempt timeout, then
// ejection); to take it out of the registry, register through NewRegistry
// with a health.WithCheck that calls the node itself.

//go:generate go run ../../internal/gomicrogen -from .. -to .
//go:generate go run ../../internal/gomicrogen -from ../../docs/quickstart/gomicro -to ../../docs/quickstart/gomicro5
//go:generate go run ../../internal/gomicrogen -from ../../examples/faultdemo/microrows -to ../../examples/faultdemo/microrows/v5
