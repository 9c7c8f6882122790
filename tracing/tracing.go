package tracing

import (
	"context"
	"fmt"
	"strings"

	"github.com/opentracing/opentracing-go"
)

// Tracing makes spans with one tracer and one propagation policy. It is
// safe for concurrent use.
type Tracing struct {
	tracer    opentracing.Tracer // nil: opentracing.GlobalTracer() at each call
	maxHeader int
	prefixes  []string
	hooks     Hooks
	bridge    Bridge // nil: spans live in OpenTracing's context only
}

// Bridge joins a Tracing to another tracing API that keeps its spans and
// baggage in a context.Context of its own (package tracing/otel makes one
// for OpenTelemetry), so that a call continues the trace that API's code
// started, and a handler sees its server span and baggage through that API.
type Bridge interface {
	// Parent returns the span a call started with ctx continues when it is
	// not the OpenTracing span in ctx: the other API's span in ctx (started
	// by that API's code, after the OpenTracing span if any), as a span
	// context of the Tracing's tracer; nil otherwise.
	Parent(ctx context.Context) opentracing.SpanContext
	// Started returns ctx (which holds span, a call or server span just
	// started) with what the other API needs: for a call span, the
	// baggage ctx holds through that API is copied into span; for a server
	// span, span's baggage is put into ctx for that API to read.
	Started(ctx context.Context, span opentracing.Span, server bool) context.Context
}

// Hooks observe a Tracing. Each may be nil and must not block.
type Hooks struct {
	// OnOversized runs when incoming trace headers were ignored because
	// together they were larger than the bound; size is their total.
	OnOversized func(size int)
	// OnDropped runs when the tracer wrote a header that the carrier cannot
	// carry (a baggage key with a space, a value with control characters):
	// it is left out and the call goes on.
	OnDropped func(key string)
}

// defaultTraceHeaders returns the prefixes of WithTraceHeaders' default (a
// new slice each time: no caller shares, or can change, the default).
func defaultTraceHeaders() []string {
	return []string{"uber-trace-id", "uberctx-", "jaeger-debug-id", "jaeger-baggage", "traceparent", "tracestate", "baggage", "x-b3-", "b3", "ot-tracer-", "ot-baggage-"}
}

// Option configures a Tracing.
type Option func(*Tracing) error

// WithTracer sets the tracer. Default: opentracing.GlobalTracer(), read at
// each call.
func WithTracer(t opentracing.Tracer) Option {
	return func(tr *Tracing) error {
		if t == nil {
			return fmt.Errorf("tracing: WithTracer: nil tracer")
		}
		tr.tracer = t
		return nil
	}
}

// WithMaxHeaderBytes bounds the incoming trace headers (keys and values
// together); larger ones are ignored and the span starts a new trace.
// Default 8 KiB.
func WithMaxHeaderBytes(n int) Option {
	return func(tr *Tracing) error {
		if n < 1 {
			return fmt.Errorf("tracing: WithMaxHeaderBytes(%d): must be positive", n)
		}
		tr.maxHeader = n
		return nil
	}
}

// WithTraceHeaders sets the prefixes of the incoming headers handed to the
// tracer (lowercase). Default: Jaeger's ("uber-trace-id", "uberctx-",
// "jaeger-debug-id", "jaeger-baggage"), W3C trace context ("traceparent",
// "tracestate") and baggage ("baggage"), B3 ("x-b3-", "b3") and the OpenTracing basic tracer's
// ("ot-tracer-", "ot-baggage-").
func WithTraceHeaders(prefixes ...string) Option {
	return func(tr *Tracing) error {
		if len(prefixes) == 0 {
			return fmt.Errorf("tracing: WithTraceHeaders: no prefix")
		}
		for _, p := range prefixes {
			if p == "" || p != strings.ToLower(p) {
				return fmt.Errorf("tracing: WithTraceHeaders: prefix %q must be non-empty and lowercase", p)
			}
		}
		tr.prefixes = prefixes
		return nil
	}
}

// WithBridge joins the Tracing to another tracing API (see Bridge).
func WithBridge(b Bridge) Option {
	return func(tr *Tracing) error {
		if b == nil {
			return fmt.Errorf("tracing: WithBridge: nil Bridge")
		}
		tr.bridge = b
		return nil
	}
}

// WithHooks sets the hooks.
func WithHooks(h Hooks) Option {
	return func(tr *Tracing) error { tr.hooks = h; return nil }
}

// New builds a Tracing.
func New(opts ...Option) (*Tracing, error) {
	t := &Tracing{maxHeader: 8 << 10, prefixes: defaultTraceHeaders()}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("tracing: nil Option")
		}
		if err := o(t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Enabled reports whether spans are recorded now: false with the no-op
// tracer, with which a carrier skips all its work (the no-op path costs
// nothing).
func (t *Tracing) Enabled() bool {
	_, on := t.tracerFor()
	return on
}

// tracerFor returns the tracer to use now, and false for the no-op tracer
// (nothing to record: the caller skips all work).
func (t *Tracing) tracerFor() (opentracing.Tracer, bool) {
	tr := t.tracer
	if tr == nil {
		tr = opentracing.GlobalTracer()
	}
	switch tr.(type) {
	case opentracing.NoopTracer, *opentracing.NoopTracer:
		return tr, false
	}
	return tr, true
}

// IsTraceHeader reports whether key (of any case) is a trace header this
// Tracing reads and writes (WithTraceHeaders): a carrier that relays a
// request's headers (go-micro's metadata) drops these before Inject writes
// the span's own, so that a remote peer's trace headers never reach an
// outgoing call.
func (t *Tracing) IsTraceHeader(key string) bool {
	k := strings.ToLower(key)
	for _, p := range t.prefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// extract reads the parent span context from the trace headers among the
// pairs each yields (keys of any case), or nil: none, malformed, or more
// than maxHeader bytes together (then counted through OnOversized).
func (t *Tracing) extract(tr opentracing.Tracer, each func(yield func(k, v string) bool)) opentracing.SpanContext {
	size := 0
	each(func(k, v string) bool {
		if t.IsTraceHeader(strings.ToLower(k)) {
			size += len(k) + len(v)
		}
		return true
	})
	if size == 0 {
		return nil
	}
	if size > t.maxHeader {
		if h := t.hooks.OnOversized; h != nil {
			h(size)
		}
		return nil
	}
	sc, err := tr.Extract(format, filtered{t, each})
	if err != nil {
		return nil // none or malformed: a new trace
	}
	return sc
}

// filtered hands the tracer only the trace headers, keys lowercased.
type filtered struct {
	t    *Tracing
	each func(yield func(k, v string) bool)
}

func (f filtered) ForeachKey(handler func(key, val string) error) error {
	var err error
	f.each(func(k, v string) bool {
		if k = strings.ToLower(k); f.t.IsTraceHeader(k) {
			err = handler(k, v)
		}
		return err == nil
	})
	return err
}

// spanFrom returns the span in ctx, or nil.
func spanFrom(ctx context.Context) opentracing.Span { return opentracing.SpanFromContext(ctx) }
