package tracing

import (
	"context"

	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"

	"github.com/rpcguard/rpcguard/selector"
)

// StartCall starts the call span of a call made with any client: a client
// span named op, child of the span in ctx, with a selector record for the
// call. finish ends it with the call's error.
func (t *Tracing) StartCall(ctx context.Context, op string) (_ context.Context, finish func(error)) {
	tr, on := t.tracerFor()
	if !on {
		return ctx, func(error) {}
	}
	span := startClient(ctx, tr, op, "rpcguard")
	ctx = selector.EnsureCall(opentracing.ContextWithSpan(ctx, span))
	return ctx, func(err error) {
		tagLastNode(span, ctx)
		finishRPC(span, err)
	}
}

// StartAttempt starts an attempt span under the call span in ctx, tagged
// from the selector's record of the attempt (its number, wait, node): call
// it inside the function that retry.Policy.Do runs. finish ends it.
func (t *Tracing) StartAttempt(ctx context.Context, op string) (_ context.Context, finish func(error)) {
	tr, on := t.tracerFor()
	if !on {
		return ctx, func(error) {}
	}
	span := startClient(ctx, tr, op+" attempt", "rpcguard")
	tagAttempt(span, ctx, true)
	ctx = opentracing.ContextWithSpan(ctx, span)
	return ctx, func(err error) { finishRPC(span, err) }
}

// Inject writes the span in ctx into carrier, for a client of any
// transport. Keys are lowercase; baggage values are URL-encoded, and pairs
// that gRPC metadata could not carry are dropped (Hooks.OnDropped).
func (t *Tracing) Inject(ctx context.Context, carrier map[string]string) {
	tr, on := t.tracerFor()
	span := spanFrom(ctx)
	if !on || span == nil {
		return
	}
	_ = tr.Inject(span.Context(), format, t.mapWriter(carrier))
}

// StartServer starts a server span named op, child of the span context in
// carrier (within the bound). finish ends it with the handler's error.
func (t *Tracing) StartServer(ctx context.Context, op string, carrier map[string]string) (_ context.Context, finish func(error)) {
	tr, on := t.tracerFor()
	if !on {
		return ctx, func(error) {}
	}
	parent := t.extract(tr, func(yield func(k, v string) bool) {
		for k, v := range carrier {
			if !yield(k, v) {
				return
			}
		}
	})
	span := tr.StartSpan(op, ext.RPCServerOption(parent), opentracing.Tag{Key: string(ext.Component), Value: "rpcguard"})
	return opentracing.ContextWithSpan(ctx, span), func(err error) { finishRPC(span, err) }
}
