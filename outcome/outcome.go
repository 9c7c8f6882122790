// Package outcome is rpcguard's one outcome type and its one code table,
// at the bottom of the layers so that every engine and every adapter (an
// outside one too) reads results the same way: Default classifies an
// error by its gRPC status (what a node's ejection and a circuit count),
// HTTPStatus, FromHTTP and MicroCode translate between gRPC codes, HTTP
// statuses and go-micro's codes, and Error carries another transport's
// error to the engines in gRPC's terms.
package outcome

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Outcome is what a call's or an attempt's result says about the callee:
// the node that served it (selector) and the dependency as a whole
// (breaker).
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

// Default classifies by gRPC status code, for the selector and the breaker
// alike: nil is a Success; Canceled (a gRPC status or context.Canceled) is
// Neutral, and so is ResourceExhausted (the callee is full, not broken: no
// ejection, no open circuit, and its instant refusal must not pass for a
// fast answer in power of two choices); Unavailable, Unknown, Internal,
// DataLoss and DeadlineExceeded (a gRPC status or context.DeadlineExceeded:
// a callee that does not answer in time is failing) are Failures; an error
// without a gRPC status (a plain error of the plain API, a transport error)
// is a Failure, as gRPC's Unknown is; every other code is a Success,
// because the callee answered.
func Default(err error) Outcome {
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

// FromHTTP maps an HTTP status (or a go-micro code, which is one) to the
// gRPC code of its meaning, as gRPC's HTTP mapping does.
func FromHTTP(status int) codes.Code {
	switch status {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusRequestTimeout:
		return codes.DeadlineExceeded
	case http.StatusConflict:
		return codes.Aborted
	case 499: // client closed request
		return codes.Canceled
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return codes.Unavailable
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	}
	switch {
	case status >= 500:
		return codes.Internal
	case status >= 400:
		return codes.FailedPrecondition
	}
	return codes.OK
}

// HTTPStatus maps a gRPC code to the HTTP status an HTTP server answers
// with: the other direction of FromHTTP.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.Aborted, codes.AlreadyExists:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	}
	return http.StatusInternalServerError
}

// MicroCode is the go-micro code of a gRPC code: its HTTP status, with
// go-micro's own conventions for the two it names differently (408 for
// DeadlineExceeded, as its errors.Timeout; 499 for Canceled).
func MicroCode(c codes.Code) int32 {
	switch c {
	case codes.DeadlineExceeded:
		return http.StatusRequestTimeout
	case codes.Canceled:
		return 499
	}
	return int32(HTTPStatus(c))
}

// Error is an error of another transport (go-micro's, an HTTP client's)
// read in gRPC's terms, as an adapter hands it to the engines: status.Code
// gives Code, and errors.Is and errors.As see every error in Errs. Errs[0]
// is the transport's error as it returned it, for the adapter to give back
// to its caller; the rest is what else it carries (the transport's parsed
// error, a retry mark, a sentinel).
type Error struct {
	Errs   []error // at least one
	Code   codes.Code
	Msg    string // the status message
	Unsent bool   // the request never left the client
	Text   string // the error's text, for the transport's own parsers; "" for Errs[0]'s
}

func (e *Error) Error() string {
	if e.Text != "" {
		return e.Text
	}
	return e.Errs[0].Error()
}

// Unwrap returns Errs.
func (e *Error) Unwrap() []error { return e.Errs }

// GRPCStatus is the status of Code and Msg.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Msg) }
