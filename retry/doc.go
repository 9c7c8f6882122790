// Package retry retries failed RPC attempts on another node; for a gRPC
// client, start with rpcguard.NewClient, which puts it in place with the
// rest of the stack.
//
// It exists because a retry only helps when it goes somewhere else, waits
// only when waiting helps, and stops before it makes an outage worse. One
// engine, Run (attempts one at a time) and Hedge (side by side), is what
// the gRPC interceptors (UnaryClientInterceptor, StreamClientInterceptor),
// the plain Go API (Do, Call) and any transport's adapter call; it gives
// every call:
//
//   - A node it has not tried: attempts share the call's selector record
//     (selector.NewRecord), so the rpcguard_selector balancer, or the Selector
//     the plain API picks from, never sends a retry back to a node that
//     already failed it.
//   - The right wait. A retry on a node the call has not tried waits only
//     WithFreshNodeDelay (default none): the node that failed is not asked
//     again, so there is nothing to protect by waiting, and the fleet is
//     protected by the budget instead. A retry that can only go to a node
//     already tried waits an exponential backoff with jitter
//     (github.com/cenkalti/backoff/v4, a fresh BackOff per call). A server's
//     grpc-retry-pushback-ms trailer overrides both; a negative one stops
//     retries. Every wait ends the moment the call's context does.
//   - Deadlines: the caller's deadline bounds everything; a per-attempt
//     timeout (WithPerAttemptTimeout) is cut from what remains; no attempt
//     starts after the deadline, and no wait that would outlast it begins.
//   - Classification: retryable are transport failures, Unavailable,
//     ResourceExhausted (a full server, see below), the attempt's own
//     timeout and errors marked Retryable; never the caller's cancellation
//     or deadline, never business errors (a plain error counts as gRPC's
//     Unknown). A call not marked idempotent is retried only when it
//     provably never reached a server (its pick failed, gRPC sent no byte,
//     or the plain API's error says so with NotSent).
//   - A retry budget shared by all calls of a Policy, earned by successes:
//     each successful call earns Budget.Ratio of a retry, plus
//     Budget.MinPerSecond a second; an outage earns nothing.
//   - An adaptive concurrency limit, off until a server answers
//     ResourceExhausted: then attempts past what the fleet takes wait their
//     turn within their deadline (WithoutConcurrencyLimit).
//   - Hedging, for idempotent methods only (WithHedging): after a delay the
//     same request goes to another node; the first success wins, the others
//     are cancelled, and each attempt decodes into its own reply.
//   - An error that keeps the last attempt's gRPC status, and a typed *Error
//     that lists every attempt (node, error, duration).
//
// Streams: a server-streaming call is retried only before its first message
// reaches the caller, so no message is delivered twice; client and bidi
// streams are retried only while the stream is being opened, before anything
// was sent.
package retry
