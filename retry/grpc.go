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

// Metadata keys of gRFC A6 (retries).
const (
	pushbackKey         = "grpc-retry-pushback-ms"
	previousAttemptsKey = "grpc-previous-rpc-attempts"
)

// unaryCall holds what one unary call needs across attempts, in one
// allocation: its selector record, its settings, the call options with a
// Trailer option appended, and the trailer it fills.
type unaryCall struct {
	rec     selector.CallContext // the call's record, when ctx has none
	cfg     callConfig
	trailer metadata.MD
	opts    []grpc.CallOption
	buf     [6]grpc.CallOption
}

// UnaryClientInterceptor retries unary calls under the Policy. Put it after
// the call-level interceptors (tracing's call span, the breaker) and before
// the attempt-level ones, with the rpcguard_selector balancer so that each
// attempt goes to a node the call has not tried. Per-call CallOptions
// (Idempotent, MaxAttempts, PerAttemptTimeout) override the Policy.
func (p *Policy) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		u := &unaryCall{cfg: p.callConfig(method, opts)}
		if u.cfg.err != nil {
			return status.Error(codes.InvalidArgument, u.cfg.err.Error())
		}
		if selector.CallFrom(ctx) == nil {
			ctx = u.rec.Init(ctx)
		}
		if u.cfg.hedgeDelay > 0 {
			return p.hedgeUnary(ctx, &u.cfg, method, req, reply, cc, invoker, opts)
		}
		u.opts = append(append(u.buf[:0], opts...), grpc.Trailer(&u.trailer))
		return p.run(ctx, &u.cfg, func(actx context.Context, n int) outcome {
			if n > 1 {
				actx = metadata.AppendToOutgoingContext(actx, previousAttemptsKey, strconv.Itoa(n-1))
			}
			u.trailer = nil
			err := invoker(actx, method, req, reply, cc, u.opts...)
			if err == nil {
				return outcome{}
			}
			return grpcOutcome(actx, err, u.trailer)
		})
	}
}

// hedgeUnary hedges a unary call: every attempt decodes into a new message
// of the reply's type, and only the winner's is merged into reply.
func (p *Policy) hedgeUnary(ctx context.Context, cfg *callConfig, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	msg, ok := reply.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "retry: hedging %s needs a protobuf reply, got %T", method, reply)
	}
	winner, err := hedge(ctx, p, cfg, func(actx context.Context) (proto.Message, outcome) {
		if a, _ := selector.AttemptFrom(actx); a.Number > 1 {
			actx = metadata.AppendToOutgoingContext(actx, previousAttemptsKey, strconv.Itoa(a.Number-1))
		}
		var trailer metadata.MD
		r := msg.ProtoReflect().New().Interface()
		err := invoker(actx, method, req, r, cc, append(opts[:len(opts):len(opts)], grpc.Trailer(&trailer))...)
		if err != nil {
			return nil, grpcOutcome(actx, err, trailer)
		}
		return r, outcome{}
	})
	if err != nil {
		return err
	}
	proto.Reset(msg)
	proto.Merge(msg, winner)
	return nil
}

// grpcOutcome describes a failed gRPC attempt: its node and whether it may
// have reached the server come from the selector's record of the attempt
// (without the rpcguard_selector balancer they are unknown, and the attempt
// counts as sent); the pushback comes from the trailer.
func grpcOutcome(actx context.Context, err error, trailer metadata.MD) outcome {
	out := outcome{err: err, sent: true}
	if pickFailed(err) {
		out.sent = false
	} else if a, ok := selector.AttemptFrom(actx); ok && a.Picked {
		out.node = a.Node
		if a.Done {
			out.sent = a.Sent
		}
	}
	if v := trailer.Get(pushbackKey); len(v) > 0 {
		out.hasPushback = true
		ms, perr := strconv.Atoi(v[0])
		if perr != nil || ms < 0 {
			out.pushback = -1 // gRFC A6: a malformed or negative pushback means do not retry
		} else {
			out.pushback = time.Duration(ms) * time.Millisecond
		}
	}
	return out
}
