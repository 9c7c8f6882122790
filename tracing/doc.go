// Package tracing makes OpenTracing spans for calls and for every attempt
// of a call, across gRPC, HTTP and any other client; for a gRPC client,
// rpcguard.NewClient puts its interceptors in place. (A Jaeger tracer comes
// from package tracing/jaeger.)
//
// A call that was retried on another node, hedged or refused by a breaker
// should show exactly that in its trace. The call interceptors make one
// client span per logical call; the attempt interceptors, placed inside the
// retry interceptor, make one child span per attempt and per hedge, tagged
// with the attempt number, the node, the backoff before it and its outcome.
// Breaker refusals, a spent retry budget and exhausted attempts show as the
// span's rpcguard.reason tag and a log. Spans of streams live until the
// stream ends. A caller's cancellation is not an error.
//
// One engine makes every span (StartCall, StartAttempt, StartServer,
// Inject): the gRPC interceptors, the HTTP middleware and RoundTripper are
// carriers around it, and so can be an adapter of yours.
//
// The order on a gRPC client (outermost first):
//
//	grpc.WithChainUnaryInterceptor(
//		tr.UnaryClientInterceptor(),        // call span
//		brk.UnaryClientInterceptor(),       // breaker
//		policy.UnaryClientInterceptor(),    // retry
//		tr.AttemptUnaryClientInterceptor(), // attempt spans
//	)
//
// Propagation writes only the tracer's own headers, lowercase, into a copy
// of the outgoing metadata; servers read only trace headers (by prefix,
// WithTraceHeaders) and ignore them, counted, when together they pass a
// bound (default 8 KiB). The tracer is the one given (WithTracer) or
// opentracing.GlobalTracer() at each call; the package sets nothing global.
// With the no-op tracer the interceptors do nothing but call through.
package tracing
