package selector

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors a pick returns. Both answer status.Code(err) == codes.Unavailable,
// and errors.Is finds them through any wrapping, including a gRPC call's
// error when the pick was made by the balancer. A call that fails with one of
// them never left the client: it is always safe to retry elsewhere or later.
var (
	// ErrNoNodes: the selector has no node that passes its filters and is
	// not ejected.
	ErrNoNodes error = &pickError{"selector: no node available"}
	// ErrAllTried: every available node was already tried in this call (see
	// NewCall and WithReuseTried).
	ErrAllTried error = &pickError{"selector: every available node was already tried in this call"}
)

type pickError struct{ msg string }

func (e *pickError) Error() string { return e.msg }

// GRPCStatus makes status.Code report Unavailable, and makes the gRPC
// balancer's pick error end the attempt at once instead of blocking a
// wait-for-ready call on a condition that waiting cannot change.
func (e *pickError) GRPCStatus() *status.Status { return status.New(codes.Unavailable, e.msg) }
