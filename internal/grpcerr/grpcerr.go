// Package grpcerr holds what rpcguard's packages share about errors and gRPC
// status codes: sentinel errors that carry a code, and the sorting of an
// attempt's error that every classifier starts from.
package grpcerr

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel is an error value that answers status.Code with Code. Compare
// with errors.Is.
type Sentinel struct {
	Msg  string
	Code codes.Code
}

func (e *Sentinel) Error() string { return e.Msg }

// GRPCStatus makes status.Code (and gRPC, when the error crosses it)
// report e.Code.
func (e *Sentinel) GRPCStatus() *status.Status { return status.New(e.Code, e.Msg) }

// Outcome is what an error says about the callee.
type Outcome int

// The outcomes.
const (
	Success Outcome = iota
	Failure
	Neutral
)

// ByCode sorts err: nil is a Success; the caller's cancellation
// (context.Canceled or codes.Canceled) is Neutral; so is ResourceExhausted,
// a load signal (the server is full) that says the callee is neither
// broken nor fast; context.DeadlineExceeded
// and errors without a gRPC status (transport failures of a non-gRPC
// client) are Failures; a gRPC code is a Failure if failing says so, and a
// Success otherwise (the callee answered).
func ByCode(err error, failing func(codes.Code) bool) Outcome {
	if err == nil {
		return Success
	}
	if errors.Is(err, context.Canceled) {
		return Neutral
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Failure
	}
	s, ok := status.FromError(err)
	switch {
	case !ok:
		return Failure
	case s.Code() == codes.Canceled || s.Code() == codes.ResourceExhausted:
		return Neutral
	case failing(s.Code()):
		return Failure
	}
	return Success
}
