// Package grpcx holds the gRPC helpers that several rpcguard wrappers share.
package grpcx

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
)

// OnEnd wraps a client stream so that end runs exactly once when the stream
// ends. It is the one place that decides the end of every stream shape
// (desc's ServerStreams and ClientStreams):
//
//   - a stream whose server sends one message (unary-like and
//     client-streaming: the generated CloseAndRecv) ends at the first RecvMsg
//     that returns, with nil or its error: gRPC reads the status with that
//     message, and a nil error means the call succeeded;
//   - a server-streaming or bidi stream ends when RecvMsg returns an error:
//     io.EOF is a success (nil), any other error is the outcome;
//   - any stream ends with ctx's error when the caller's ctx ends first (a
//     caller that gives up without reading to the end; gRPC asks callers to
//     do one or the other), and with the error of a SendMsg, CloseSend or
//     Header that is not io.EOF (the stream is broken; io.EOF means the real
//     status waits in RecvMsg).
//
// Once ctx has ended, the stream sends nothing more: SendMsg returns io.EOF
// (the status, Canceled or DeadlineExceeded, waits in RecvMsg) and CloseSend
// does nothing. gRPC ends the stream on a goroutine of its own when ctx ends;
// a send that slipped in first could still reach the server and be answered
// (an OK for a stream the caller cancelled). A bare client loses that race
// almost never, but the wrappers' own end functions, which run when ctx ends
// too, delay gRPC's goroutine enough to lose it now and then.
func OnEnd(ctx context.Context, desc *grpc.StreamDesc, cs grpc.ClientStream, end func(err error)) grpc.ClientStream {
	s := &endStream{ClientStream: cs, ctx: ctx, single: desc == nil || !desc.ServerStreams}
	s.fin = func(err error) { s.once.Do(func() { end(err) }) }
	s.stop = context.AfterFunc(ctx, func() { s.fin(ctx.Err()) })
	return s
}

type endStream struct {
	grpc.ClientStream
	ctx    context.Context
	single bool // the server sends one message: the first RecvMsg ends the stream
	once   sync.Once
	fin    func(error) // runs end once
	stop   func() bool // stops the ctx watch; set before the caller has the stream
}

// end ends the stream from the caller's goroutine.
func (s *endStream) end(err error) {
	s.stop()
	s.fin(err)
}

func (s *endStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch {
	case err == nil:
		if s.single {
			s.end(nil)
		}
	case errors.Is(err, io.EOF):
		s.end(nil)
	default:
		s.end(err)
	}
	return err
}

func (s *endStream) SendMsg(m any) error {
	if s.ctx.Err() != nil {
		return io.EOF
	}
	err := s.ClientStream.SendMsg(m)
	s.broken(err)
	return err
}

func (s *endStream) CloseSend() error {
	if s.ctx.Err() != nil {
		return nil
	}
	err := s.ClientStream.CloseSend()
	s.broken(err)
	return err
}

// broken ends the stream on a send-side error that is not io.EOF (io.EOF
// says the stream is over and its status waits in RecvMsg).
func (s *endStream) broken(err error) {
	if err != nil && !errors.Is(err, io.EOF) {
		s.end(err)
	}
}

// UnknownMethod names, in circuits, spans and metrics, every call a server
// serves through grpc.UnknownServiceHandler: their methods come from remote
// clients, which must not make state at will.
const UnknownMethod = "(unknown method)"

// ServerMethod is the name a server-side wrapper gives a stream call: its
// full method if the server registered it, UnknownMethod if not (gRPC hands
// a stream interceptor a nil service for the unknown-service handler).
func ServerMethod(srv any, info *grpc.StreamServerInfo) string {
	if srv == nil {
		return UnknownMethod
	}
	return info.FullMethod
}
