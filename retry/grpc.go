package retry

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
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
		if p.Hedged(method, u.ropts...) {
			return p.hedgeUnary(ctx, method, req, reply, cc, invoker, opts, u.ropts)
		}
		// grpc.OnFinish runs once per RPC, as without retries: with the
		// call's outcome, not with each attempt's.
		u.opts = append(u.buf[:0], opts...)
		var finish []func(error)
		u.opts, finish = withoutOnFinish(u.opts)
		u.opts = append(u.opts, grpc.Trailer(&u.trailer))
		_, err := Run(ctx, p, method, func(actx context.Context) (struct{}, error) {
			u.trailer = nil
			err := invoker(withPreviousAttempts(actx), method, req, reply, cc, u.opts...)
			return struct{}{}, withPushback(err, u.trailer)
		}, u.ropts...)
		for _, f := range finish {
			f(err)
		}
		return err
	}
}

// withoutOnFinish takes the grpc.OnFinish options out of opts (in place)
// and returns their functions.
func withoutOnFinish(opts []grpc.CallOption) ([]grpc.CallOption, []func(error)) {
	var finish []func(error)
	kept := opts[:0]
	for _, o := range opts {
		if f, ok := o.(grpc.OnFinishCallOption); ok {
			finish = append(finish, f.OnFinish)
			continue
		}
		kept = append(kept, o)
	}
	return kept, finish
}

// hedged is what one hedged attempt received: its own reply, header,
// trailer and peer, so that attempts side by side never write the
// caller's; the winner's (or, for a failed call, the attempt whose error it
// returns) are committed into the caller's.
type hedged struct {
	reply           any
	header, trailer metadata.MD
	peer            peer.Peer
	err             error
}

// hedgeUnary hedges a unary call. The caller's grpc.Header, grpc.Trailer
// and grpc.Peer options are not handed to the attempts: each attempt
// receives its own, and the committed attempt's are written into the
// caller's once the call is over; grpc.OnFinish runs once, with the call's
// outcome.
func (p *Policy) hedgeUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts []grpc.CallOption, ropts []CallOption) error {
	newReply, commitReply, err := replyPerAttempt(reply)
	if err != nil {
		return status.Errorf(codes.Internal, "retry: hedging %s: %v", method, err)
	}
	var (
		header, trailer *metadata.MD
		pr              *peer.Peer
		finish          []func(error)
		attemptOpts     []grpc.CallOption
	)
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			header = o.HeaderAddr
		case grpc.TrailerCallOption:
			trailer = o.TrailerAddr
		case grpc.PeerCallOption:
			pr = o.PeerAddr
		case grpc.OnFinishCallOption:
			finish = append(finish, o.OnFinish)
		default:
			attemptOpts = append(attemptOpts, o)
		}
	}
	var (
		mu     sync.Mutex
		failed []*hedged
	)
	winner, err := Hedge(ctx, p, method, func(actx context.Context) (*hedged, error) {
		h := &hedged{reply: newReply()}
		err := invoker(withPreviousAttempts(actx), method, req, h.reply, cc,
			append(attemptOpts[:len(attemptOpts):len(attemptOpts)], grpc.Header(&h.header), grpc.Trailer(&h.trailer), grpc.Peer(&h.peer))...)
		if err != nil {
			h.err = err
			mu.Lock()
			failed = append(failed, h)
			mu.Unlock()
			return nil, withPushback(err, h.trailer)
		}
		return h, nil
	}, ropts...)
	commit := winner
	if err == nil {
		commitReply(winner.reply)
	} else {
		mu.Lock()
		for _, h := range failed {
			if errors.Is(err, h.err) {
				commit = h
			}
		}
		mu.Unlock()
	}
	if commit != nil {
		if header != nil {
			*header = commit.header
		}
		if trailer != nil {
			*trailer = commit.trailer
		}
		if pr != nil {
			*pr = commit.peer
		}
	}
	for _, f := range finish {
		f(err)
	}
	return err
}

// replyPerAttempt makes a new reply for each hedged attempt and commits the
// winner's into reply: a protobuf message by its reflection, any other
// pointer (a codec of another format) by copying the value.
func replyPerAttempt(reply any) (newReply func() any, commit func(any), err error) {
	v := reflect.ValueOf(reply)
	if !v.IsValid() || (v.Kind() == reflect.Pointer && v.IsNil()) {
		// Nothing to decode into (a call whose reply the caller drops):
		// every attempt gets the same, as the bare call would.
		return func() any { return reply }, func(any) {}, nil
	}
	if msg, ok := reply.(proto.Message); ok {
		return func() any { return msg.ProtoReflect().New().Interface() },
			func(w any) { proto.Reset(msg); proto.Merge(msg, w.(proto.Message)) }, nil
	}
	if v.Kind() != reflect.Pointer {
		return nil, nil, fmt.Errorf("the reply must be a pointer, got %T", reply)
	}
	return func() any { return reflect.New(v.Type().Elem()).Interface() },
		func(w any) { v.Elem().Set(reflect.ValueOf(w).Elem()) }, nil
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
