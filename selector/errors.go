package selector

import (
	"google.golang.org/grpc/codes"

	"github.com/rpcguard/rpcguard/internal/grpcerr"
)

// Errors a pick returns. Both answer status.Code(err) == codes.Unavailable,
// and errors.Is finds them through any wrapping, including a gRPC call's
// error when the pick was made by the balancer. A call that fails with one of
// them never left the client: it is always safe to retry elsewhere or later.
// Their gRPC status also makes the balancer's pick error end the attempt at
// once instead of blocking a wait-for-ready call on a condition that waiting
// cannot change.
var (
	// ErrNoNodes: the selector has no node that passes its filters and is
	// not ejected.
	ErrNoNodes error = &grpcerr.Sentinel{Msg: "selector: no node available", Code: codes.Unavailable}
	// ErrAllTried: every available node was already tried in this call (see
	// NewRecord and WithReuseTried).
	ErrAllTried error = &grpcerr.Sentinel{Msg: "selector: every available node was already tried in this call", Code: codes.Unavailable}
)
