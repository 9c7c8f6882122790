// Package health registers service nodes in a registry with a TTL,
// re-registers them on an interval, deregisters them on a failing health
// check or a graceful stop, and lets clients watch a service's nodes; start
// with NewRegistrar on a server, and hand the registry to rpcguard.NewClient
// on a client.
//
// It exists because clients lose calls to killed nodes that stay in the
// registry. The remedy is a TTL with re-registration: a node renews its
// entry every interval, and the registry drops it when the TTL passes
// without a renewal, so a crashed node disappears within its TTL. A
// Registrar does that on a Registry, without the faults go-micro's loop has
// (deregistering and registering again in the same tick when a check fails;
// a TTL below the interval, which makes services flap: rejected here).
//
// Registries: NewMemory (in-process, the embedded default: expiry exact to
// its tick) and, in package health/etcd so that only its users link the etcd
// client, etcd.New (go.etcd.io/etcd/client/v3: the TTL is a lease, a renewal
// keeps it alive; a watch resumes after a disconnect). Every
// Registry is a selector.Source, so selector.NewResolverBuilder(registry)
// resolves "rpcguard:///SERVICE" to the service's live nodes.
//
// On a gRPC server, Registrar.HealthServer serves grpc.health.v1 with its
// status tied to the registrar: NOT_SERVING while the check fails and from
// the start of a graceful stop.
package health
