package breaker

import (
	"google.golang.org/grpc/codes"

	"github.com/rpcguard/rpcguard/internal/grpcerr"
)

// Outcome is what a call's result means for its circuit.
type Outcome int

// The values match grpcerr's, which DefaultClassifier converts.
const (
	// Success: the dependency answered (a NotFound is an answer).
	Success Outcome = iota
	// Failure counts against the circuit.
	Failure
	// Neutral counts for nothing: the caller gave up.
	Neutral
)

// Classifier maps a call's error (nil for success) to an Outcome.
type Classifier func(err error) Outcome

// DefaultClassifier counts server-side failures only: the gRPC codes
// Unavailable, Internal, Unknown, DeadlineExceeded and DataLoss, and errors
// without a gRPC status (transport failures). (The HTTP middleware turns a
// response of 500 or more into the gRPC status of its meaning first.)
// Canceled is Neutral, and so is ResourceExhausted: a server that
// sheds load is not a broken dependency, and opening the circuit on it
// would turn an overload into an outage. Every other code
// (NotFound, InvalidArgument, PermissionDenied, ...) is the caller's
// business and a Success for the circuit.
func DefaultClassifier(err error) Outcome {
	if err == nil {
		return Success
	}
	return Outcome(grpcerr.ByCode(err, func(c codes.Code) bool {
		switch c {
		case codes.Unavailable, codes.Internal, codes.Unknown, codes.DeadlineExceeded, codes.DataLoss:
			return true
		}
		return false
	}))
}
