package tracing

import (
	"context"
	"strings"

	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/rpcguard/rpcguard/internal/grpcx"
	"github.com/rpcguard/rpcguard/selector"
)

const componentGRPC = "gRPC"

// UnaryClientInterceptor makes the call span: one client span per logical
// call, named by the full method, tagged with the peer (the node of the last
// attempt, when the rpcguard selector picked it) and the service. Put it
// first in the chain.
func (t *Tracing) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		tr, on := t.tracerFor()
		if !on {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		ctx, span := t.startCall(ctx, tr, method, cc)
		err := invoker(ctx, method, req, reply, cc, opts...)
		tagLastNode(span, ctx)
		finishRPC(span, err)
		return err
	}
}

// AttemptUnaryClientInterceptor makes one child span per attempt (and per
// hedge): put it after the retry interceptor. Its headers replace the call
// span's, so that the server's span is the attempt's child.
func (t *Tracing) AttemptUnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		tr, on := t.tracerFor()
		if !on {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		ctx, span := t.startAttempt(ctx, tr, method)
		err := invoker(ctx, method, req, reply, cc, opts...)
		tagAttempt(span, ctx, false)
		finishRPC(span, err)
		return err
	}
}

// StreamClientInterceptor is UnaryClientInterceptor for streams: the span
// lives until the stream ends (io.EOF, an error, or the caller's
// cancellation).
func (t *Tracing) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		tr, on := t.tracerFor()
		if !on {
			return streamer(ctx, desc, cc, method, opts...)
		}
		ctx, span := t.startCall(ctx, tr, method, cc)
		return traceStream(ctx, desc, span, func(ctx context.Context) (grpc.ClientStream, error) {
			return streamer(ctx, desc, cc, method, opts...)
		}, func() { tagLastNode(span, ctx) })
	}
}

// AttemptStreamClientInterceptor is AttemptUnaryClientInterceptor for
// streams.
func (t *Tracing) AttemptStreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		tr, on := t.tracerFor()
		if !on {
			return streamer(ctx, desc, cc, method, opts...)
		}
		ctx, span := t.startAttempt(ctx, tr, method)
		return traceStream(ctx, desc, span, func(ctx context.Context) (grpc.ClientStream, error) {
			return streamer(ctx, desc, cc, method, opts...)
		}, func() { tagAttempt(span, ctx, false) })
	}
}

// startCall starts the call span and gives the call a selector record (so
// that the attempts' nodes are known to it), and injects the span.
func (t *Tracing) startCall(ctx context.Context, tr opentracing.Tracer, method string, cc *grpc.ClientConn) (context.Context, opentracing.Span) {
	span := startClient(ctx, tr, method, componentGRPC)
	if svc, ok := strings.CutPrefix(cc.Target(), selector.Scheme+":///"); ok && svc != "" {
		ext.PeerService.Set(span, svc)
	}
	ctx = selector.EnsureCall(opentracing.ContextWithSpan(ctx, span))
	return t.injectGRPC(ctx, tr, span), span
}

// startAttempt starts an attempt span, child of the call span, tagged with
// the attempt's number, wait and hedging.
func (t *Tracing) startAttempt(ctx context.Context, tr opentracing.Tracer, method string) (context.Context, opentracing.Span) {
	span := startClient(ctx, tr, method+" attempt", componentGRPC)
	tagAttempt(span, ctx, true)
	return t.injectGRPC(opentracing.ContextWithSpan(ctx, span), tr, span), span
}

// traceStream opens a stream and finishes span when it ends (see
// grpcx.OnEnd for the end of each stream shape).
func traceStream(ctx context.Context, desc *grpc.StreamDesc, span opentracing.Span, open func(context.Context) (grpc.ClientStream, error), tag func()) (grpc.ClientStream, error) {
	cs, err := open(ctx)
	if err != nil {
		tag()
		finishRPC(span, err)
		return nil, err
	}
	return grpcx.OnEnd(ctx, desc, cs, func(err error) {
		tag()
		finishRPC(span, err)
	}), nil
}

// injectGRPC writes span's headers into a copy of ctx's outgoing metadata,
// replacing any the tracer wrote before (lowercase keys, nothing else
// touched; what metadata cannot carry is dropped, see carrier.go).
func (t *Tracing) injectGRPC(ctx context.Context, tr opentracing.Tracer, span opentracing.Span) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	if err := tr.Inject(span.Context(), format, t.mdWriter(md)); err != nil {
		return ctx
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// UnaryServerInterceptor makes the server span, child of the client's
// attempt (or call) span when the request carries one within the bound.
func (t *Tracing) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		tr, on := t.tracerFor()
		if !on {
			return handler(ctx, req)
		}
		span := t.startServer(ctx, tr, info.FullMethod)
		resp, err := handler(opentracing.ContextWithSpan(ctx, span), req)
		finishRPC(span, err)
		return resp, err
	}
}

// StreamServerInterceptor makes the server span of a stream; it ends when
// the handler returns.
func (t *Tracing) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		tr, on := t.tracerFor()
		if !on {
			return handler(srv, ss)
		}
		span := t.startServer(ss.Context(), tr, info.FullMethod)
		err := handler(srv, &serverStream{ServerStream: ss, ctx: opentracing.ContextWithSpan(ss.Context(), span)})
		finishRPC(span, err)
		return err
	}
}

type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }

func (t *Tracing) startServer(ctx context.Context, tr opentracing.Tracer, method string) opentracing.Span {
	md, _ := metadata.FromIncomingContext(ctx)
	parent := t.extract(tr, func(yield func(k, v string) bool) {
		for k, vs := range md {
			for _, v := range vs {
				if !yield(k, v) {
					return
				}
			}
		}
	})
	span := tr.StartSpan(method, ext.RPCServerOption(parent), opentracing.Tag{Key: string(ext.Component), Value: componentGRPC})
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		ext.PeerAddress.Set(span, p.Addr.String())
	}
	return span
}
