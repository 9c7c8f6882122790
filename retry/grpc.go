package retry

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rpcguard/rpcguard/selector"
)

// The gRPC adapter: it runs the engine (Run) and translates, reading the
// call's options, gRFC A6's headers (the previous attempts going out, the
// pushback coming back) and, for hedging, a reply per attempt.

// Metadata keys of gRFC A6 (retries).
const (
	pushbackKey         = "grpc-retry-pushback-ms"
	previousAttemptsKey = "grpc-previous-rpc-attempts"
)

// unaryCall holds what one unary call needs across attempts, in one
// allocation: its selector record, its retry options, the call options with
// a Trailer option appended, and the trailer it fills.
type unaryCall struct {
	rec     selector.RecordContext // the call's record, when ctx has none
	trailer metadata.MD
	opts    []grpc.CallOption
	buf     [6]grpc.CallOption
	ropts   []CallOption
	rbuf    [2]CallOption
}

// UnaryClientInterceptor retries unary calls under the Policy. Put it after
// the call-level interceptors (tracing's call span, the breaker) and before
// the attempt-level ones, with the rpcguard_selector balancer so that each
// attempt goes to a node the call has not tried. Per-call CallOptions
// (Idempotent, MaxAttempts, PerAttemptTimeout) override the Policy.
//
// (Kept out of line so that the interceptor is compiled here, where its
// attempt closure is known to stay on the stack: 3 allocations per call.)
//
//go:noinline
func (p *Policy) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		u := &unaryCall{}
		u.ropts = retryOptions(u.rbuf[:0], opts)
		if selector.RecordFrom(ctx) == nil {
			ctx = u.rec.Init(ctx)
		}
		if p.Settings(method, u.ropts...).HedgeDelay > 0 {
			return p.hedgeUnary(ctx, method, req, reply, cc, invoker, opts, u.ropts)
		}
		u.opts = append(append(u.buf[:0], opts...), grpc.Trailer(&u.trailer))
		_, err := Run(ctx, p, method, func(actx context.Context) (struct{}, error) {
			u.trailer = nil
			err := invoker(withPreviousAttempts(actx), method, req, reply, cc, u.opts...)
			return struct{}{}, withPushback(err, u.trailer)
		}, u.ropts...)
		return err
	}
}

// hedgeUnary hedges a unary call: every attempt decodes into a new message
// of the reply's type, and the winner's is committed into reply.
func (p *Policy) hedgeUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption, ropts []CallOption) error {
	msg, ok := reply.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "retry: hedging %s needs a protobuf reply, got %T", method, reply)
	}
	winner, err := Hedge(ctx, p, method, func(actx context.Context) (proto.Message, error) {
		var trailer metadata.MD
		r := msg.ProtoReflect().New().Interface()
		err := invoker(withPreviousAttempts(actx), method, req, r, cc, append(opts[:len(opts):len(opts)], grpc.Trailer(&trailer))...)
		if err != nil {
			return nil, withPushback(err, trailer)
		}
		return r, nil
	}, ropts...)
	if err != nil {
		return err
	}
	proto.Reset(msg)
	proto.Merge(msg, winner)
	return nil
}

// retryOptions appends the retry CallOptions among opts to buf.
func retryOptions(buf []CallOption, opts []grpc.CallOption) []CallOption {
	for _, o := range opts {
		if co, ok := o.(CallOption); ok {
			buf = append(buf, co)
		}
	}
	return buf
}

// withPreviousAttempts tells the server how many attempts came before
// (gRFC A6), from the attempt's number in the call's record.
func withPreviousAttempts(actx context.Context) context.Context {
	if a, _ := selector.AttemptFrom(actx); a.Number > 1 {
		return metadata.AppendToOutgoingContext(actx, previousAttemptsKey, strconv.Itoa(a.Number-1))
	}
	return actx
}

// withPushback attaches the server's grpc-retry-pushback-ms to err: a
// malformed or negative value means do not retry (gRFC A6).
func withPushback(err error, trailer metadata.MD) error {
	if err == nil {
		return nil
	}
	v := trailer.Get(pushbackKey)
	if len(v) == 0 {
		return err
	}
	ms, perr := strconv.Atoi(v[0])
	if perr != nil || ms < 0 {
		return Pushback(err, -1)
	}
	return Pushback(err, time.Duration(ms)*time.Millisecond)
}
