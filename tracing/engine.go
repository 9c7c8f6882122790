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

// SpanOption says what the caller knows of a span.
type SpanOption func(*spanInfo)

type spanInfo struct {
	component   string
	node        selector.Node
	hasNode     bool
	peerService string
}

// Component names the span's component tag. Default "rpcguard".
func Component(name string) SpanOption { return func(s *spanInfo) { s.component = name } }

// Node tags an attempt with the node it goes to, when the caller chose it
// (a go-micro CallWrapper, a client with a balancer of its own); when
// rpcguard's selector picked it, the span reads the node from the call's
// record without this option.
func Node(n selector.Node) SpanOption { return func(s *spanInfo) { s.node, s.hasNode = n, true } }

// PeerService tags the span with the service called.
func PeerService(name string) SpanOption { return func(s *spanInfo) { s.peerService = name } }

func spanOptions(opts []SpanOption) spanInfo {
	s := spanInfo{component: "rpcguard"}
	for _, o := range opts {
		o(&s)
	}
	return s
}

// StartCall starts the call span of one logical call: a client span named
// op, child of the span in ctx, with a selector record for the call (so the
// span learns the nodes its attempts went to). finish ends it with the
// call's error: the gRPC code, error and message, rpcguard's reasons (open
// circuit, spent budget, ...), the node of the last attempt.
func (t *Tracing) StartCall(ctx context.Context, op string, opts ...SpanOption) (_ context.Context, finish func(error)) {
	tr, on := t.tracerFor()
	if !on {
		return ctx, func(error) {}
	}
	info := spanOptions(opts)
	span := startClient(ctx, tr, op, info.component)
	if info.peerService != "" {
		ext.PeerService.Set(span, info.peerService)
	}
	ctx = selector.JoinRecord(opentracing.ContextWithSpan(ctx, span))
	return ctx, func(err error) {
		tagLastNode(span, ctx)
		finishRPC(span, err)
	}
}

// StartAttempt starts an attempt span ("OP attempt") under the call span in
// ctx, tagged with the attempt's number, wait and hedging from the call's
// record, and its node (from the record once picked, or Node). Call it for
// each attempt: inside the function a retry engine runs, or in a
// per-attempt wrapper. finish ends it with the attempt's error.
func (t *Tracing) StartAttempt(ctx context.Context, op string, opts ...SpanOption) (_ context.Context, finish func(error)) {
	tr, on := t.tracerFor()
	if !on {
		return ctx, func(error) {}
	}
	info := spanOptions(opts)
	span := startClient(ctx, tr, op+" attempt", info.component)
	tagAttempt(span, ctx, true)
	if info.hasNode {
		tagNode(span, info.node)
	}
	ctx = opentracing.ContextWithSpan(ctx, span)
	return ctx, func(err error) {
		if !info.hasNode {
			tagAttempt(span, ctx, false)
		}
		finishRPC(span, err)
	}
}

// StartServer starts a server span named op, child of the span context in
// the incoming headers (each yields the pairs, keys of any case; only trace
// headers within the size bound are read). finish ends it with the
// handler's error.
func (t *Tracing) StartServer(ctx context.Context, op string, headers func(yield func(k, v string) bool), opts ...SpanOption) (_ context.Context, finish func(error)) {
	tr, on := t.tracerFor()
	if !on {
		return ctx, func(error) {}
	}
	info := spanOptions(opts)
	parent := t.extract(tr, headers)
	span := tr.StartSpan(op, ext.RPCServerOption(parent), opentracing.Tag{Key: string(ext.Component), Value: info.component})
	return opentracing.ContextWithSpan(ctx, span), func(err error) { finishRPC(span, err) }
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
	span := spanFrom(ctx)
	if !on || span == nil {
		return
	}
	_ = tr.Inject(span.Context(), format, writer{t: t, ok: ok, set: set})
}
