// Package gomicro brings rpcguard to go-micro v4 (go-micro.dev/v4
// v4.11.0): the translation between go-micro's errors and gRPC's codes, and
// a go-micro registry as an rpcguard selector.Source. It translates only:
// the engines are rpcguard's.
//
// go-micro's defaults are global and reach the network (its default mDNS
// registry multicasts): give every go-micro service, client, selector and
// broker an explicit registry and broker.
package gomicro
