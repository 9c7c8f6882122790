// Package grpcerr holds the sentinel error type that rpcguard's packages
// share: an error value that carries a gRPC code. (Classification lives in
// outcome.Default: one outcome type, one code table.)
package grpcerr

import (
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
