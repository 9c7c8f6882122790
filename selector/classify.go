package selector

import (
	"strconv"

	"google.golang.org/grpc/codes"

	"github.com/rpcguard/rpcguard/internal/grpcerr"
)

// Outcome is what an attempt's result says about the node that served it.
type Outcome int

// The values match grpcerr's, which DefaultClassifier converts.
const (
	// Success: the node answered; its consecutive-failure count resets.
	// Business errors (NotFound, InvalidArgument, ...) are successes here:
	// the node is working.
	Success Outcome = iota
	// Failure: the node failed; it counts towards ejection.
	Failure
	// Neutral: the result says nothing about the node (the caller canceled).
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

// DefaultClassifier classifies by gRPC status code: nil is a Success;
// Canceled (a gRPC status or context.Canceled) is Neutral, and so is
// ResourceExhausted (the node is full, not broken; its instant refusal must
// not pass for a fast answer in power of two choices); Unavailable,
// Unknown, Internal, DataLoss and DeadlineExceeded (a gRPC status or
// context.DeadlineExceeded: a node that does not answer in time is failing)
// are Failures; an error without a gRPC status is a Failure (a transport
// error of a non-gRPC client); every other code is a Success, because the
// node answered.
func DefaultClassifier(err error) Outcome {
	return Outcome(grpcerr.ByCode(err, func(c codes.Code) bool {
		switch c {
		case codes.Unavailable, codes.Unknown, codes.Internal, codes.DataLoss, codes.DeadlineExceeded:
			return true
		}
		return false
	}))
}
