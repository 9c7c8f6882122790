package selector

import (
	"context"

	"google.golang.org/grpc"
)

// UnaryClientInterceptor gives each call a per-call record (NewRecord), so
// that the attempts of gRPC's own retries (a retryPolicy in the service
// config) avoid the nodes the call already tried. rpcguard's retry
// interceptors do this themselves; this one is for clients without them.
func UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(JoinRecord(ctx), method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor is UnaryClientInterceptor for streams.
func StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(JoinRecord(ctx), desc, cc, method, opts...)
	}
}
