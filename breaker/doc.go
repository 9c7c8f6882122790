// Package breaker is circuit breaking for gRPC, HTTP and any call, on
// hystrix-go's circuits, without hystrix.Do's cost; on a gRPC client,
// rpcguard.NewClient puts it in place, and New with Do is the plain API.
//
// hystrix-go brings the Hystrix semantics and dashboard people know, but
// hystrix.Do starts two goroutines per call, does not cancel the work on
// timeout, and integrations built on it count every error, a caller's
// NotFound included, as a failure. A Breaker drives hystrix-go's own circuit
// (hystrix.GetCircuit, AllowRequest, ReportEvent) on the caller's
// goroutine: the same state machine, rolling metrics and dashboard stream;
// only server-side failures count (Classifier); a caller's cancellation is
// neutral, and so are the breaker's own refusals. A command timeout (a
// context deadline that cancels the work) and a maximum concurrency
// (enforced without blocking) are there for who sets them; by default there
// is neither, so that a breaker never refuses or cuts a call that a healthy
// dependency would serve (hystrix's own defaults, 1 s and 10 at once, did).
// A panic in the wrapped code releases its slot, counts as a failure and
// goes on.
//
// Engines and adapters: Breaker.Do is the plain Go API, and Allow then Done
// its two-step form for streams and wrappers; the gRPC client and server
// interceptors and the net/http middleware are thin adapters over them.
// NewStreamHandler serves the Hystrix dashboard stream where the user
// mounts it; the package opens no port.
//
// # hystrix-go's global state
//
// hystrix-go keeps its circuits and their settings in process-wide maps that
// never shrink, and starts two goroutines per circuit that run for the life
// of the process (its metrics and pool monitors). A Breaker contains this:
// every command it creates is named "NAMESPACE/COMMAND" (WithNamespace is
// required), it configures only its own commands, and it never calls
// hystrix.Flush or changes hystrix's logger. Two Breakers with the same
// namespace share circuits and the last one to configure a command sets its
// settings: give each client its own namespace. Tests that check for
// goroutine leaks should ignore hystrix's monitors: HystrixGoroutines
// names them.
package breaker
