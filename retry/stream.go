package retry

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/selector"
)

// StreamClientInterceptor retries streams under the Policy. A
// server-streaming call is retried only until its first message reaches the
// caller: its request is kept and sent again, and no message is delivered
// twice. Client and bidi streams are retried only while the stream is being
// opened, before anything was sent. The per-attempt timeout of a server
// stream bounds the wait for its first message.
func (p *Policy) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		ropts := retryOptions(nil, opts)
		set := p.settings(method, ropts...)
		if set.Err != nil {
			return nil, set.Err
		}
		ctx = selector.JoinRecord(ctx)
		opts, fin := onFinishOnce(opts)
		if desc.ClientStreams || !desc.ServerStreams || !set.Idempotent {
			// Opened now, as without retries, and retried only while it
			// opens: an attempt's timeout would end the stream it opens
			// (Run never hedges: a hedge would too), and a call that is
			// not idempotent is never sent twice anyway.
			var last *attemptEnd
			cs, err := Run(ctx, p, method, func(actx context.Context) (grpc.ClientStream, error) {
				aopts, end := fin.forAttempt(opts)
				cs, err := streamer(actx, desc, cc, method, aopts...)
				last = end
				return cs, err
			}, append(ropts, PerAttemptTimeout(0))...)
			fin.settle(last, err)
			return cs, err
		}
		return &serverStream{p: p, firstMsg: set.PerAttempt, ropts: ropts, ctx: ctx, desc: desc, cc: cc, method: method, streamer: streamer, opts: opts, fin: fin}, nil
	}
}

// onFinishOnce takes the caller's grpc.OnFinish options out of a stream's
// options, so that they run once, for the stream handed to the caller (or
// with the call's error when no attempt was), not for every attempt.
func onFinishOnce(opts []grpc.CallOption) ([]grpc.CallOption, *finishOnce) {
	for _, o := range opts {
		if _, ok := o.(grpc.OnFinishCallOption); ok {
			kept, fns := withoutOnFinish(append([]grpc.CallOption(nil), opts...))
			return kept, &finishOnce{fns: fns}
		}
	}
	return opts, nil
}

// finishOnce holds a stream call's OnFinish functions; nil: none.
type finishOnce struct{ fns []func(error) }

// attemptEnd is one attempt's OnFinish: held until the attempt is known to
// be the one handed to the caller, dropped otherwise.
type attemptEnd struct {
	mu            sync.Mutex
	handed, ended bool
	err           error
	fns           []func(error)
}

// forAttempt returns an attempt's options with its own OnFinish.
func (f *finishOnce) forAttempt(opts []grpc.CallOption) ([]grpc.CallOption, *attemptEnd) {
	if f == nil {
		return opts, nil
	}
	a := &attemptEnd{fns: f.fns}
	return append(opts[:len(opts):len(opts)], grpc.OnFinish(a.end)), a
}

func (a *attemptEnd) end(err error) {
	a.mu.Lock()
	handed := a.handed
	a.ended, a.err = true, err
	a.mu.Unlock()
	if handed {
		for _, f := range a.fns {
			f(err)
		}
	}
}

// settle says how the call came out: the stream of last was handed to the
// caller (its OnFinish runs now if it ended already, else when it ends), or
// err ended the call (the caller's OnFinish runs with it).
func (f *finishOnce) settle(last *attemptEnd, err error) {
	if f == nil {
		return
	}
	if err != nil || last == nil {
		for _, fn := range f.fns {
			fn(err)
		}
		return
	}
	last.mu.Lock()
	last.handed = true
	ended, aerr := last.ended, last.err
	last.mu.Unlock()
	if ended {
		for _, fn := range f.fns {
			fn(aerr)
		}
	}
}

// serverStream opens its attempts lazily: the caller's request is kept, and
// the first RecvMsg (or Header) runs the retry loop over "open, send the
// request, receive the first message". Once a message reached the caller the
// stream is what it is.
type serverStream struct {
	p        *Policy
	firstMsg time.Duration // the per-attempt timeout: the wait for the first message
	ropts    []CallOption
	ctx      context.Context
	desc     *grpc.StreamDesc
	cc       *grpc.ClientConn
	method   string
	streamer grpc.Streamer
	opts     []grpc.CallOption
	fin      *finishOnce
	last     *attemptEnd // the OnFinish of the attempt being opened

	req        any
	closedSend bool
	cur        grpc.ClientStream // the established attempt
	cancel     context.CancelFunc
	err        error // the establishing error, returned again
	empty      bool  // the established stream ended without a message
}

func (s *serverStream) SendMsg(m any) error {
	if s.cur != nil {
		return s.cur.SendMsg(m)
	}
	if s.req != nil {
		return status.Error(codes.Internal, "retry: a server-streaming call sends one request")
	}
	s.req = m
	return nil
}

func (s *serverStream) CloseSend() error {
	if s.cur != nil {
		return s.cur.CloseSend()
	}
	s.closedSend = true
	return nil
}

func (s *serverStream) Header() (metadata.MD, error) {
	if s.cur == nil && s.err == nil {
		s.establish(nil)
	}
	if s.cur == nil {
		return nil, s.err
	}
	return s.cur.Header()
}

func (s *serverStream) Trailer() metadata.MD {
	if s.cur == nil {
		return nil
	}
	return s.cur.Trailer()
}

func (s *serverStream) Context() context.Context {
	if s.cur == nil {
		return s.ctx
	}
	return s.cur.Context()
}

func (s *serverStream) RecvMsg(m any) error {
	if s.cur == nil {
		if s.err == nil {
			return s.establish(m)
		}
		return s.err
	}
	err := s.cur.RecvMsg(m)
	if err != nil {
		s.cancel() // the stream is over: release its attempt's context
	}
	return err
}

// establish runs the retry loop until an attempt delivers its first message
// into m (or, for m == nil, its header). The error is kept for later calls.
func (s *serverStream) establish(m any) error {
	firstMsgTimeout := s.firstMsg
	// The engine's per-attempt timeout would end the stream the attempt
	// opens: the wait for the first message is bounded here instead.
	_, s.err = Run(s.ctx, s.p, s.method, func(actx context.Context) (struct{}, error) {
		sctx, cancel := context.WithCancel(withPreviousAttempts(actx))
		// The timer and the first message race; exactly one of them wins
		// (state 0 → 1 or 2), so a stream is never handed to the caller after
		// the timer has cancelled it.
		var state atomic.Int32 // 0 running, 1 first message won, 2 timer won
		var timer *time.Timer
		if firstMsgTimeout > 0 {
			timer = time.AfterFunc(firstMsgTimeout, func() {
				if state.CompareAndSwap(0, 2) {
					selector.Expire(actx) // a failure of the node, not the Canceled gRPC will report
					cancel()
				}
			})
		}
		cs, err := s.open(sctx, m)
		if timer != nil {
			timer.Stop()
		}
		if !state.CompareAndSwap(0, 1) && err == nil {
			// The first message came as the timer fired: the stream is
			// cancelled, so this attempt timed out.
			err = status.Error(codes.DeadlineExceeded, "retry: no first message within the per-attempt timeout")
		}
		if err == nil || (errors.Is(err, io.EOF) && cs != nil && state.Load() == 1) {
			s.cur, s.cancel, s.empty = cs, cancel, err != nil
			if s.empty {
				cancel() // the server sent no message: the stream is over
			}
			return struct{}{}, nil
		}
		var trailer metadata.MD
		if cs != nil {
			trailer = cs.Trailer()
		}
		cancel()
		err = withPushback(err, trailer)
		if state.Load() == 2 && s.ctx.Err() == nil {
			// The attempt's own timeout (its stream was cancelled by the
			// timer): a deadline, as a unary attempt's, tried again.
			err = Retryable(status.Error(codes.DeadlineExceeded, "retry: no first message within the per-attempt timeout"))
		}
		return struct{}{}, err
	}, append(s.ropts, PerAttemptTimeout(0))...)
	s.fin.settle(s.last, s.err)
	if s.err == nil && s.empty {
		return io.EOF
	}
	return s.err
}

// open starts one attempt: open the stream, send the kept request, close
// the send side if the caller did, and wait for the first message into m (or
// the header). io.EOF with a stream means the server sent no message.
func (s *serverStream) open(ctx context.Context, m any) (grpc.ClientStream, error) {
	aopts, end := s.fin.forAttempt(s.opts)
	s.last = end
	cs, err := s.streamer(ctx, s.desc, s.cc, s.method, aopts...)
	if err != nil {
		return nil, err
	}
	if s.req != nil {
		if err := cs.SendMsg(s.req); err != nil && !errors.Is(err, io.EOF) {
			return cs, err
		} // on io.EOF the real status comes from RecvMsg
	}
	if s.closedSend {
		if err := cs.CloseSend(); err != nil {
			return cs, err
		}
	}
	if m == nil {
		_, err = cs.Header()
		return cs, err
	}
	return cs, cs.RecvMsg(m)
}
