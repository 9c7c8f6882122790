// Package otel gives package tracing's spans to OpenTelemetry: New turns an
// OpenTelemetry TracerProvider into a *tracing.Tracing, through the official
// OpenTracing bridge (go.opentelemetry.io/otel/bridge/opentracing), with
// OpenTelemetry's propagators on the wire (W3C traceparent, tracestate and
// baggage by default). Every rpcguard stack takes the result: rpcguard.
// WithTracing for gRPC, gomicro's options, stack.WithTracing, the HTTP
// middleware. It is a package of its own so that only its users link the
// OpenTelemetry SDK.
//
// The spans are those of every back-end: a call span, a child span per
// attempt (rpcguard.attempt, rpcguard.backoff_ms, rpcguard.hedge,
// rpcguard.node.id, server.address, server.port), a server span; gRPC spans
// carry rpc.system, rpc.service, rpc.method and rpc.grpc.status_code, and
// the span kind is client or server. A call continues the OpenTelemetry span
// in its context (an otelgrpc or otelhttp server span, a span of the
// caller's) and sends the baggage set there with OpenTelemetry's baggage
// API; a handler behind rpcguard's server wrappers finds its server span and
// the caller's baggage through OpenTelemetry's API (trace.SpanFromContext,
// baggage.FromContext).
//
// Tracing never slows or fails a call: give the provider a batching span
// processor (sdktrace.WithBatcher, whose queue is bounded and drops when
// full), never a synchronous one in production. Incoming trace headers are
// bounded as on every back-end (tracing.WithMaxHeaderBytes, default 8 KiB
// in all); malformed ones start a new trace.
package otel

import (
	"context"
	"errors"
	"fmt"

	"github.com/opentracing/opentracing-go"
	"go.opentelemetry.io/otel/baggage"
	otbridge "go.opentelemetry.io/otel/bridge/opentracing"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rpcguard/rpcguard/tracing"
)

// instrumentation names rpcguard's tracer in the provider.
const instrumentation = "github.com/rpcguard/rpcguard/tracing"

// Option configures New.
type Option func(*config) error

type config struct {
	prop propagation.TextMapPropagator
	opts []tracing.Option
}

// WithPropagator sets the propagator that writes and reads the trace
// headers: otel.GetTextMapPropagator() to follow the process's global
// choice, or, for a fleet that still speaks Jaeger or Zipkin,
// go.opentelemetry.io/contrib/propagators/jaeger or b3 (alone or in a
// composite). Default: W3C trace context and baggage
// (propagation.TraceContext and propagation.Baggage). OpenTelemetry's
// global propagator is not the default: unset, it writes nothing.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) error {
		if p == nil {
			return errors.New("otel: WithPropagator: nil propagator")
		}
		c.prop = p
		return nil
	}
}

// WithTracing passes more options to tracing.New (hooks, the header bound,
// the trace headers read); WithTracer and WithBridge are New's own.
func WithTracing(opts ...tracing.Option) Option {
	return func(c *config) error {
		c.opts = append(c.opts, opts...)
		return nil
	}
}

// New returns a Tracing whose spans are tp's, through the OpenTracing
// bridge. tp must not be nil (otel.GetTracerProvider() for the global one).
func New(tp trace.TracerProvider, opts ...Option) (*tracing.Tracing, error) {
	if tp == nil {
		return nil, errors.New("otel: New: nil TracerProvider")
	}
	c := config{prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("otel: New: nil Option")
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	// The pair's wrapper tracer puts each span the bridge starts into the
	// context for OpenTelemetry's API too (its deferred context set-up).
	bt, _ := otbridge.NewTracerPair(tp.Tracer(instrumentation))
	bt.SetTextMapPropagator(c.prop)
	t, err := tracing.New(append([]tracing.Option{tracing.WithTracer(bt), tracing.WithBridge(bridge{bt})}, c.opts...)...)
	if err != nil {
		return nil, fmt.Errorf("otel: %w", err)
	}
	return t, nil
}

// bridge is the tracing.Bridge for OpenTelemetry's context.
type bridge struct{ bt *otbridge.BridgeTracer }

// Parent is the OpenTelemetry span in ctx, unless it is the OpenTracing
// span's in ctx (whose bridge put it there when it was made current).
func (b bridge) Parent(ctx context.Context) opentracing.SpanContext {
	span := trace.SpanFromContext(ctx)
	sc := span.SpanContext()
	if !sc.IsValid() {
		return nil
	}
	if os := opentracing.SpanFromContext(ctx); os != nil {
		// The bridge's span contexts embed OpenTelemetry's.
		if id, ok := os.Context().(interface{ SpanID() trace.SpanID }); ok && id.SpanID() == sc.SpanID() {
			return nil
		}
	}
	ctx = b.bt.ContextWithBridgeSpan(ctx, span)
	bs := opentracing.SpanFromContext(ctx)
	if bs == nil {
		return nil
	}
	copyBaggage(ctx, bs)
	return bs.Context()
}

func (b bridge) Started(ctx context.Context, span opentracing.Span, server bool) context.Context {
	if !server {
		copyBaggage(ctx, span)
		return ctx
	}
	var members []baggage.Member
	span.Context().ForeachBaggageItem(func(k, v string) bool {
		if m, err := baggage.NewMemberRaw(k, v); err == nil {
			members = append(members, m)
		}
		return true
	})
	if len(members) == 0 {
		return ctx
	}
	bag, err := baggage.New(members...)
	if err != nil {
		return ctx // more than baggage allows: the span keeps it, the context does not
	}
	return baggage.ContextWithBaggage(ctx, bag)
}

// copyBaggage sets the baggage that ctx holds through OpenTelemetry's API
// on span (it travels with the span's headers).
func copyBaggage(ctx context.Context, span opentracing.Span) {
	for _, m := range baggage.FromContext(ctx).Members() {
		if span.BaggageItem(m.Key()) != m.Value() {
			span.SetBaggageItem(m.Key(), m.Value())
		}
	}
}
