package tracing

import (
	"context"
	"errors"
	"net"
	"strconv"
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

// OpenTelemetry's semantic-convention attributes, set as tags on every
// back-end (Jaeger shows them as tags, OpenTelemetry as attributes).
const (
	tagRPCSystem     = "rpc.system"           // "grpc", "go-micro"
	tagRPCService    = "rpc.service"          // gRPC: the full service name
	tagRPCMethod     = "rpc.method"           // gRPC: the method name
	tagRPCStatusCode = "rpc.grpc.status_code" // gRPC: the status code, as a number
	tagServerAddress = "server.address"       // the node's host
	tagServerPort    = "server.port"          // the node's port, as a number
)

// tagRPC tags an RPC span with the semantic conventions' names: the
// system for gRPC and go-micro spans, the service and method of a gRPC
// method ("/pkg.Service/Method"). It reports whether the span is a gRPC
// call's (whose finish adds rpc.grpc.status_code).
func tagRPC(span opentracing.Span, op, component string) (grpcSpan bool) {
	switch component {
	case componentGRPC:
		span.SetTag(tagRPCSystem, "grpc")
		if svc, method, ok := strings.Cut(strings.TrimPrefix(op, "/"), "/"); ok && strings.HasPrefix(op, "/") {
			span.SetTag(tagRPCService, svc)
			span.SetTag(tagRPCMethod, method)
		}
		return true
	case componentMicro:
		span.SetTag(tagRPCSystem, "go-micro")
	}
	return false
}

// startClient starts a client span named op, child of parent, or else of
// the span in ctx.
func startClient(ctx context.Context, tr opentracing.Tracer, op, component string, parent opentracing.SpanContext) opentracing.Span {
	var opts [3]opentracing.StartSpanOption
	o := append(opts[:0], ext.SpanKindRPCClient, opentracing.Tag{Key: string(ext.Component), Value: component})
	if parent != nil {
		o = append(o, opentracing.ChildOf(parent))
	} else if span := spanFrom(ctx); span != nil {
		o = append(o, opentracing.ChildOf(span.Context()))
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
	if host, port, err := net.SplitHostPort(n.Addr); err == nil {
		span.SetTag(tagServerAddress, host)
		if p, err := strconv.Atoi(port); err == nil {
			span.SetTag(tagServerPort, p)
		}
	}
}

// tagLastNode tags a call span with the node of the call's last pick.
func tagLastNode(span opentracing.Span, ctx context.Context) {
	if c := selector.RecordFrom(ctx); c != nil {
		if tried := c.Tried(); len(tried) > 0 {
			tagNode(span, tried[len(tried)-1])
		}
	}
}

// finishRPC ends a span with err's outcome: the gRPC code as a tag (and as
// rpc.grpc.status_code on a gRPC call's span, grpcSpan); for
// errors other than the caller's cancellation, error=true and the message
// in a log; rpcguard's reasons (open circuit, spent budget, ...) as a tag
// and logs.
func finishRPC(span opentracing.Span, err error, grpcSpan bool) {
	code := status.Code(err)
	span.SetTag(TagGRPCCode, code.String())
	if grpcSpan {
		span.SetTag(tagRPCStatusCode, int(code))
	}
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
