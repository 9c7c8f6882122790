package selector

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Outcome is what a call's or an attempt's result says about the callee:
// the node that served it (selector) and the dependency as a whole
// (breaker). It is rpcguard's one outcome type, and DefaultClassifier its
// one code table.
type Outcome int

// The outcomes.
const (
	// Success: the callee answered. Business errors (NotFound,
	// InvalidArgument, ...) are successes: the callee works.
	Success Outcome = iota
	// Failure counts towards a node's ejection and against a circuit.
	Failure
	// Neutral says nothing about the callee: the caller canceled, or the
	// callee shed load (ResourceExhausted).
	Neutral
)

// String returns "success", "failure" or "neutral".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Neutral:
		return "neutral"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Classifier maps an attempt's error (nil for success) to an Outcome.
type Classifier func(err error) Outcome

// DefaultClassifier classifies by gRPC status code, for the selector and
// the breaker alike: nil is a Success; Canceled (a gRPC status or
// context.Canceled) is Neutral, and so is ResourceExhausted (the callee is
// full, not broken: no ejection, no open circuit, and its instant refusal
// must not pass for a fast answer in power of two choices); Unavailable,
// Unknown, Internal, DataLoss and DeadlineExceeded (a gRPC status or
// context.DeadlineExceeded: a callee that does not answer in time is
// failing) are Failures; an error without a gRPC status (a plain error of
// the plain API, a transport error) is a Failure, as gRPC's Unknown is;
// every other code is a Success, because the callee answered.
func DefaultClassifier(err error) Outcome {
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
	if !ok {
		return Failure
	}
	switch s.Code() {
	case codes.Canceled, codes.ResourceExhausted:
		return Neutral
	case codes.Unavailable, codes.Unknown, codes.Internal, codes.DataLoss, codes.DeadlineExceeded:
		return Failure
	}
	return Success
}
