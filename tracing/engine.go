package tracing

import (
	"context"

	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"

	"github.com/rpcguard/rpcguard/selector"
)

// The engine: call, attempt and server spans, written once. The gRPC
// interceptors, the HTTP middleware and RoundTripper, and the plain API are
// carriers around it: they start and finish spans through these methods,
// and only move headers in and out (carrier.go).

// SpanInfo says what the caller knows of a span. Its zero value is fine:
// component "rpcguard", no peer, the node from the call's record.
type SpanInfo struct {
	// Component is the span's component tag ("gRPC", "go-micro"); "" means
	// "rpcguard".
	Component string
	// PeerService tags a client span with the service called.
	PeerService string
	// Node tags an attempt with the node it goes to, when the caller chose
	// it (a go-micro CallWrapper, a client with a balancer of its own); when
	// rpcguard's selector picked it, the span reads the node from the
	// call's record. Used when its ID is set.
	Node selector.Node
	// Parent yields the trace headers to continue (keys of any case; only
	// trace headers within the size bound are read): a server span's
	// incoming request, or, for a call span whose ctx carries no span, what
	// the caller was handed (a gateway that passes its caller's trace on as
	// metadata).
	Parent func(yield func(k, v string) bool)
}

func (s SpanInfo) component() string {
	if s.Component == "" {
		return "rpcguard"
	}
	return s.Component
}

// StartCall starts the call span of one logical call: a client span named
// op, child of the span in ctx, with a selector record for the call (so the
// span learns the nodes its attempts went to). finish ends it with the
// call's error: the gRPC code, error and message, rpcguard's reasons (open
// circuit, spent budget, ...), the node of the last attempt.
func (t *Tracing) StartCall(ctx context.Context, op string, info SpanInfo) (_ context.Context, finish func(error)) {
	tr, on := t.tracerFor()
	if !on {
		return ctx, func(error) {}
	}
	var parent opentracing.SpanContext
	if t.bridge != nil {
		parent = t.bridge.Parent(ctx)
	}
	if parent == nil && info.Parent != nil && spanFrom(ctx) == nil {
		parent = t.extract(tr, info.Parent)
	}
	span := startClient(ctx, tr, op, info.component(), parent)
	rpc := tagRPC(span, op, info.component())
	if info.PeerService != "" {
		ext.PeerService.Set(span, info.PeerService)
	}
	ctx = opentracing.ContextWithSpan(ctx, span)
	if t.bridge != nil {
		ctx = t.bridge.Started(ctx, span, false)
	}
	ctx = selector.JoinRecord(ctx)
	return ctx, func(err error) {
		tagLastNode(span, ctx)
		finishRPC(span, err, rpc)
	}
}

// StartAttempt starts an attempt span ("OP attempt") under the call span in
// ctx, tagged with the attempt's number, wait and hedging from the call's
// record, and its node (from the record once picked, or Node). Call it for
// each attempt: inside the function a retry engine runs, or in a
// per-attempt wrapper. finish ends it with the attempt's error.
func (t *Tracing) StartAttempt(ctx context.Context, op string, info SpanInfo) (_ context.Context, finish func(error)) {
	tr, on := t.tracerFor()
	if !on {
		return ctx, func(error) {}
	}
	span := startClient(ctx, tr, op+" attempt", info.component(), nil)
	rpc := tagRPC(span, op, info.component())
	tagAttempt(span, ctx, true)
	hasNode := info.Node.ID != ""
	if hasNode {
		tagNode(span, info.Node)
	}
	ctx = opentracing.ContextWithSpan(ctx, span)
	return ctx, func(err error) {
		if !hasNode {
			tagAttempt(span, ctx, false)
		}
		finishRPC(span, err, rpc)
	}
}

// StartServer starts a server span named op, child of the span context in
// the incoming headers (each yields the pairs, keys of any case; only trace
// headers within the size bound are read). finish ends it with the
// handler's error.
func (t *Tracing) StartServer(ctx context.Context, op string, info SpanInfo) (_ context.Context, finish func(error)) {
	tr, on := t.tracerFor()
	if !on {
		return ctx, func(error) {}
	}
	var parent opentracing.SpanContext
	if info.Parent != nil {
		parent = t.extract(tr, info.Parent)
	}
	span := tr.StartSpan(op, ext.RPCServerOption(parent), opentracing.Tag{Key: string(ext.Component), Value: info.component()})
	rpc := tagRPC(span, op, info.component())
	ctx = opentracing.ContextWithSpan(ctx, span)
	if t.bridge != nil {
		ctx = t.bridge.Started(ctx, span, true)
	}
	return ctx, func(err error) { finishRPC(span, err, rpc) }
}

// Inject writes the span in ctx into a carrier through set, for a client of
// any transport: lowercase keys, baggage values URL-encoded; pairs that
// gRPC metadata could not carry are dropped (Hooks.OnDropped).
func (t *Tracing) Inject(ctx context.Context, set func(k, v string)) {
	t.inject(ctx, metadataSafe, set)
}

// inject writes the span in ctx through set, keeping the pairs ok accepts.
func (t *Tracing) inject(ctx context.Context, ok func(k, v string) bool, set func(k, v string)) {
	tr, on := t.tracerFor()
	if !on {
		return
	}
	var sc opentracing.SpanContext
	if t.bridge != nil {
		sc = t.bridge.Parent(ctx)
	}
	if span := spanFrom(ctx); sc == nil && span != nil {
		sc = span.Context()
	}
	if sc == nil {
		return
	}
	_ = tr.Inject(sc, format, writer{t: t, ok: ok, set: set})
}
