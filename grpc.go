package rpcguard

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/internal/grpcx"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/stack"
	"github.com/rpcguard/rpcguard/tracing"
)

// The gRPC adapter of the one stack (package stack): the call level is
// stack.Guard (unary) or stack.Begin (streams); between it and the attempt
// spans runs the retry policy's gRPC adapter, which knows gRPC's own retry
// headers, pushback and stream shapes.

// UnaryClientInterceptor is the whole client stack of s for unary calls, in
// one interceptor: call span → breaker → retry → attempt span. NewClient
// installs it; use it on a client of your own making (with the
// rpcguard_selector balancer, so that each attempt goes to a node the call
// has not tried).
func UnaryClientInterceptor(s *stack.Stack) grpc.UnaryClientInterceptor {
	return unaryClientInterceptor(s, tracing.SpanInfo{})
}

// StreamClientInterceptor is UnaryClientInterceptor for streams: retried
// while they open (see retry.Policy.StreamClientInterceptor), their call
// span and breaker slot held until they end.
func StreamClientInterceptor(s *stack.Stack) grpc.StreamClientInterceptor {
	return streamClientInterceptor(s, tracing.SpanInfo{})
}

// spanInfo names the component and, for an rpcguard:///SERVICE target, the
// service, unless the client's are known already.
func spanInfo(known tracing.SpanInfo, cc *grpc.ClientConn) tracing.SpanInfo {
	if known.Component != "" {
		return known
	}
	info := tracing.SpanInfo{Component: "gRPC"}
	if svc, ok := strings.CutPrefix(cc.Target(), selector.Scheme+":///"); ok && svc != "" {
		info.PeerService = svc
	}
	return info
}

func unaryClientInterceptor(s *stack.Stack, span tracing.SpanInfo) grpc.UnaryClientInterceptor {
	if s == nil {
		return func(context.Context, string, any, any, *grpc.ClientConn, grpc.UnaryInvoker, ...grpc.CallOption) error {
			return errNilStack
		}
	}
	retry := s.Policy().UnaryClientInterceptor()
	attempt := s.Tracing().AttemptUnaryClientInterceptor()
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return s.Guard(ctx, stack.Op{Name: method, Span: spanInfo(span, cc)}, func(ctx context.Context) error {
			return retry(ctx, method, req, reply, cc, func(actx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
				return attempt(actx, method, req, reply, cc, invoker, opts...)
			}, opts...)
		})
	}
}

func streamClientInterceptor(s *stack.Stack, span tracing.SpanInfo) grpc.StreamClientInterceptor {
	if s == nil {
		return func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, grpc.Streamer, ...grpc.CallOption) (grpc.ClientStream, error) {
			return nil, errNilStack
		}
	}
	retry := s.Policy().StreamClientInterceptor()
	attempt := s.Tracing().AttemptStreamClientInterceptor()
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, end, err := stack.Begin(ctx, s, stack.Op{Name: method, Span: spanInfo(span, cc)}, func(ctx context.Context) (grpc.ClientStream, error) {
			return retry(ctx, desc, cc, method, func(actx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				return attempt(actx, desc, cc, method, streamer, opts...)
			}, opts...)
		})
		if err != nil {
			return nil, err
		}
		return grpcx.OnEnd(ctx, desc, cs, end), nil
	}
}

// errNilStack fails every call of an interceptor made from a nil Stack.
var errNilStack = status.Error(codes.Internal, "rpcguard: interceptor of a nil *stack.Stack")
