package tracing

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"github.com/opentracing/opentracing-go/log"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/internal/grpcerr"
	"github.com/rpcguard/rpcguard/selector"
)

// Tag keys of rpcguard's own.
const (
	TagAttempt   = "rpcguard.attempt"    // the attempt's number, from 1
	TagHedge     = "rpcguard.hedge"      // true on a hedged attempt
	TagBackoffMS = "rpcguard.backoff_ms" // the wait before the attempt, in ms
	TagNodeID    = "rpcguard.node.id"    // the node the attempt went to
	TagReason    = "rpcguard.reason"     // why rpcguard refused or stopped: open circuit, spent budget, ...
	TagGRPCCode  = "grpc.code"           // the gRPC status code, by name
)

// startClient starts a client span named op, child of the span in ctx.
func startClient(ctx context.Context, tr opentracing.Tracer, op, component string, parent opentracing.SpanContext) opentracing.Span {
	var opts [3]opentracing.StartSpanOption
	o := append(opts[:0], ext.SpanKindRPCClient, opentracing.Tag{Key: string(ext.Component), Value: component})
	if span := spanFrom(ctx); span != nil {
		o = append(o, opentracing.ChildOf(span.Context()))
	} else if parent != nil {
		o = append(o, opentracing.ChildOf(parent))
	}
	return tr.StartSpan(op, o...)
}

// tagAttempt tags span with what the selector's record knows of ctx's
// attempt: its number, wait and hedging (set before it ran) and its node
// (once picked).
func tagAttempt(span opentracing.Span, ctx context.Context, start bool) {
	a, ok := selector.AttemptFrom(ctx)
	if !ok {
		return
	}
	if start && a.Number > 0 {
		span.SetTag(TagAttempt, a.Number)
		span.SetTag(TagBackoffMS, float64(a.Delay)/float64(time.Millisecond))
		if a.Hedge {
			span.SetTag(TagHedge, true)
		}
	}
	if a.Picked {
		tagNode(span, a.Node)
	}
}

// tagNode tags span with the node an attempt went to.
func tagNode(span opentracing.Span, n selector.Node) {
	span.SetTag(TagNodeID, n.ID)
	ext.PeerAddress.Set(span, n.Addr)
}

// tagLastNode tags a call span with the node of the call's last pick.
func tagLastNode(span opentracing.Span, ctx context.Context) {
	if c := selector.RecordFrom(ctx); c != nil {
		if tried := c.Tried(); len(tried) > 0 {
			tagNode(span, tried[len(tried)-1])
		}
	}
}

// finishRPC ends a span with err's outcome: the gRPC code as a tag; for
// errors other than the caller's cancellation, error=true and the message
// in a log; rpcguard's reasons (open circuit, spent budget, ...) as a tag
// and logs.
func finishRPC(span opentracing.Span, err error) {
	code := status.Code(err)
	span.SetTag(TagGRPCCode, code.String())
	if err != nil && code != codes.Canceled && !errors.Is(err, context.Canceled) {
		ext.Error.Set(span, true)
		span.LogFields(log.String("event", "error"), log.String("message", err.Error()))
	}
	tagReasons(span, err)
	span.Finish()
}

// tagReasons logs every rpcguard sentinel in err's tree.
func tagReasons(span opentracing.Span, err error) {
	var reasons []string
	walk(err, func(e error) {
		if s, ok := e.(*grpcerr.Sentinel); ok {
			reasons = append(reasons, s.Msg)
			span.LogFields(log.String("event", "rpcguard"), log.String("message", s.Msg))
		}
	})
	if len(reasons) > 0 {
		span.SetTag(TagReason, strings.Join(reasons, "; "))
	}
}

func walk(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walk(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walk(e, f)
		}
	}
}
