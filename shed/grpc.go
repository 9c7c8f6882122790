package shed

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/tap"
)

// pushback is how long a refused caller should wait before it tries this
// server again: the target (a standing queue drains by then), from 1 ms to
// 1 s.
func (l *Limiter) pushback() time.Duration {
	target, _ := l.targets()
	return min(max(time.Duration(target), time.Millisecond), time.Second)
}

func (l *Limiter) pushbackMD() metadata.MD {
	return metadata.Pairs("grpc-retry-pushback-ms", strconv.FormatInt(l.pushback().Milliseconds(), 10))
}

// Tap returns a gRPC tap (grpc.InTapHandle) that stamps each stream with
// the time its headers arrived, before it waits for a goroutine and a CPU,
// then calls next (nil: none). A server has one tap: chain yours here.
func (l *Limiter) Tap(next tap.ServerInHandle) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		ctx = Arrived(ctx, time.Now())
		if next != nil {
			return next(ctx, info)
		}
		return ctx, nil
	}
}

// ServerOptions returns the gRPC server options of the Limiter: the Tap
// (grpc.InTapHandle) and both interceptors. grpc-go takes one tap per
// server and panics at a second: a server with a tap of its own passes
// grpc.InTapHandle(l.Tap(yours)) and the two interceptors instead.
func (l *Limiter) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InTapHandle(l.Tap(nil)),
		grpc.ChainUnaryInterceptor(l.UnaryServerInterceptor()), grpc.ChainStreamInterceptor(l.StreamServerInterceptor())}
}

// UnaryServerInterceptor refuses a call that waited too long in a standing
// queue with ResourceExhausted and a grpc-retry-pushback-ms trailer. Put it
// first in the chain: a refusal should cost nothing. Without the Tap, a
// call's wait is the Go scheduler's estimate (see the package doc).
func (l *Limiter) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		t, err := l.Acquire(ctx)
		if err != nil {
			_ = grpc.SetTrailer(ctx, l.pushbackMD())
			return nil, err
		}
		defer t.Release()
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams.
func (l *Limiter) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		t, err := l.AcquireStream(ss.Context())
		if err != nil {
			ss.SetTrailer(l.pushbackMD())
			return err
		}
		defer t.Release()
		return handler(srv, ss)
	}
}
