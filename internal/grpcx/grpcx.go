// Package grpcx holds the gRPC helpers that several rpcguard wrappers share.
package grpcx

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
)

// OnEnd wraps a client stream so that end runs once when the stream ends:
// with nil when RecvMsg reports io.EOF, with the error when it reports
// another, or with ctx's error when the caller's ctx ends first (a caller
// that gives up without reading to the end; gRPC asks callers to do one or
// the other).
func OnEnd(ctx context.Context, cs grpc.ClientStream, end func(err error)) grpc.ClientStream {
	s := &endStream{ClientStream: cs}
	s.end = func(err error) { s.once.Do(func() { end(err) }) }
	s.stop = context.AfterFunc(ctx, func() { s.end(ctx.Err()) })
	return s
}

type endStream struct {
	grpc.ClientStream
	once sync.Once
	end  func(error)
	stop func() bool
}

func (s *endStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		s.stop()
		if errors.Is(err, io.EOF) {
			s.end(nil)
		} else {
			s.end(err)
		}
	}
	return err
}
