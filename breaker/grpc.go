package breaker

import (
	"context"

	"google.golang.org/grpc"

	"github.com/rpcguard/rpcguard/internal/grpcx"
)

// UnaryClientInterceptor breaks per full method. Put it outside the retry
// interceptor: the breaker sees the call as a whole, one event per call.
func (b *Breaker) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return b.Do(ctx, method, func(ctx context.Context) error {
			return invoker(ctx, method, req, reply, cc, opts...)
		})
	}
}

// StreamClientInterceptor breaks per full method. A stream has no timeout
// (it may rightly live long) and holds its concurrency slot until it ends;
// its outcome is its final status (io.EOF is a success).
func (b *Breaker) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		a, err := b.Allow(ctx, method)
		if err != nil {
			return nil, err
		}
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, a.Done(err)
		}
		return grpcx.OnEnd(ctx, desc, cs, func(err error) { _ = a.Done(err) }), nil
	}
}

// UnaryServerInterceptor breaks per full method on the server: a handler
// whose own dependency keeps failing sheds load (Unavailable) instead of
// queueing, and, if the command has a Timeout, a slow handler's context ends
// at it. A panicking handler releases its slot and counts as a failure.
func (b *Breaker) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		var resp any
		err := b.Do(ctx, info.FullMethod, func(ctx context.Context) error {
			var err error
			resp, err = handler(ctx, req)
			return err
		})
		return resp, err
	}
}

// StreamServerInterceptor breaks per full method on the server; streams
// have no timeout. Calls served by grpc.UnknownServiceHandler (methods a
// remote client made up) share one circuit, "(unknown method)".
func (b *Breaker) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		a, err := b.Allow(ctx, grpcx.ServerMethod(srv, info))
		if err != nil {
			return err
		}
		returned := false
		defer func() {
			if !returned { // the handler panicked: release, count, let it go on
				a.Abandon()
			}
		}()
		err = handler(srv, ss)
		returned = true
		return a.Done(err)
	}
}
