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

// The gRPC carrier: it starts and finishes spans through the engine
// (engine.go) and moves trace headers in and out of metadata.

const (
	componentGRPC  = "gRPC"
	componentMicro = "go-micro" // gomicro's spans
)

// UnaryClientInterceptor makes the call span: one client span per logical
// call, named by the full method, tagged with the peer (the node of the last
// attempt, when the rpcguard selector picked it) and the service. Put it
// first in the chain.
func (t *Tracing) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !t.Enabled() {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		ctx, finish := t.StartCall(ctx, method, callInfo(cc))
		err := invoker(t.outgoing(ctx), method, req, reply, cc, opts...)
		finish(err)
		return err
	}
}

// AttemptUnaryClientInterceptor makes one child span per attempt (and per
// hedge): put it after the retry interceptor. Its headers replace the call
// span's, so that the server's span is the attempt's child.
func (t *Tracing) AttemptUnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !t.Enabled() {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		ctx, finish := t.StartAttempt(ctx, method, SpanInfo{Component: componentGRPC})
		err := invoker(t.outgoing(ctx), method, req, reply, cc, opts...)
		finish(err)
		return err
	}
}

// StreamClientInterceptor is UnaryClientInterceptor for streams: the span
// lives until the stream ends (see grpcx.OnEnd for each stream shape).
func (t *Tracing) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if !t.Enabled() {
			return streamer(ctx, desc, cc, method, opts...)
		}
		ctx, finish := t.StartCall(ctx, method, callInfo(cc))
		return stream(ctx, desc, finish, func(ctx context.Context) (grpc.ClientStream, error) {
			return streamer(t.outgoing(ctx), desc, cc, method, opts...)
		})
	}
}

// AttemptStreamClientInterceptor is AttemptUnaryClientInterceptor for
// streams.
func (t *Tracing) AttemptStreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if !t.Enabled() {
			return streamer(ctx, desc, cc, method, opts...)
		}
		ctx, finish := t.StartAttempt(ctx, method, SpanInfo{Component: componentGRPC})
		return stream(ctx, desc, finish, func(ctx context.Context) (grpc.ClientStream, error) {
			return streamer(t.outgoing(ctx), desc, cc, method, opts...)
		})
	}
}

// callInfo names the component and, for an rpcguard:///SERVICE target, the
// service.
func callInfo(cc *grpc.ClientConn) SpanInfo {
	info := SpanInfo{Component: componentGRPC}
	if svc, ok := strings.CutPrefix(cc.Target(), selector.Scheme+":///"); ok && svc != "" {
		info.PeerService = svc
	}
	return info
}

// stream opens a stream and finishes its span when it ends.
func stream(ctx context.Context, desc *grpc.StreamDesc, finish func(error), open func(context.Context) (grpc.ClientStream, error)) (grpc.ClientStream, error) {
	cs, err := open(ctx)
	if err != nil {
		finish(err)
		return nil, err
	}
	return grpcx.OnEnd(ctx, desc, cs, finish), nil
}

// outgoing writes the span in ctx into a copy of ctx's outgoing metadata,
// replacing any trace headers written before (the attempt span's replace
// the call span's); nothing else is touched.
func (t *Tracing) outgoing(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	t.Inject(ctx, func(k, v string) { md[strings.ToLower(k)] = []string{v} })
	return metadata.NewOutgoingContext(ctx, md)
}

// UnaryServerInterceptor makes the server span, child of the client's
// attempt (or call) span when the request carries one within the bound.
func (t *Tracing) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !t.Enabled() {
			return handler(ctx, req)
		}
		ctx, finish := t.startServer(ctx, info.FullMethod)
		resp, err := handler(ctx, req)
		finish(err)
		return resp, err
	}
}

// StreamServerInterceptor makes the server span of a stream; it ends when
// the handler returns. Calls served by grpc.UnknownServiceHandler are
// named "(unknown method)": remote clients must not make span names.
func (t *Tracing) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !t.Enabled() {
			return handler(srv, ss)
		}
		ctx, finish := t.startServer(ss.Context(), grpcx.ServerMethod(srv, info))
		err := handler(srv, &serverStream{ServerStream: ss, ctx: ctx})
		finish(err)
		return err
	}
}

type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }

// startServer starts a server span from the incoming metadata, tagged with
// the peer's address.
func (t *Tracing) startServer(ctx context.Context, method string) (context.Context, func(error)) {
	md, _ := metadata.FromIncomingContext(ctx)
	ctx, finish := t.StartServer(ctx, method, SpanInfo{Component: componentGRPC, Parent: func(yield func(k, v string) bool) {
		for k, vs := range md {
			for _, v := range vs {
				if !yield(k, v) {
					return
				}
			}
		}
	}})
	if span := opentracing.SpanFromContext(ctx); span != nil {
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			ext.PeerAddress.Set(span, p.Addr.String())
		}
	}
	return ctx, finish
}
