package gomicro

import (
	"context"
	"errors"
	"strings"

	merrors "go-micro.dev/v4/errors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/outcome"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

// go-micro's error codes are HTTP statuses: the one table between them and
// gRPC's codes is package outcome's (FromHTTP and MicroCode: 400
// InvalidArgument, 404 NotFound, 408 DeadlineExceeded, 429
// ResourceExhausted, 499 Canceled, 500 Internal, 501 Unimplemented, 502 and
// 503 Unavailable, 504 DeadlineExceeded, other 4xx FailedPrecondition,
// other 5xx Internal). This file adds what only go-micro's own client
// errors say, in their Id and Detail.

// Error is a go-micro error read in gRPC's terms (FromMicro), as rpcguard's
// engines and a caller that wants gRPC codes see it: it answers status.Code
// with the gRPC code of its meaning and errors.Is for what it wraps (a
// retry mark, an rpcguard sentinel), and go-micro's errors.FromError, As
// and Parse still work (its text is go-micro's JSON, and it unwraps to the
// *errors.Error). The client wrapper's callers get go-micro's own errors.
type Error struct {
	Micro  *merrors.Error
	code   codes.Code
	cause  error // a retry.NotSent mark, an rpcguard sentinel or an injected fault; nil if none
	unsent bool  // the request never left the client
	orig   error // what go-micro's client returned, handed back to the caller as it was
}

func (e *Error) Error() string { return e.Micro.Error() }

// Unwrap returns the go-micro error and what else it carries.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Micro}
	}
	return []error{e.Micro, e.cause}
}

// GRPCStatus is the error's gRPC status: its code's meaning, go-micro's
// Detail as the message.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.code, e.Micro.Detail) }

// FromMicro translates an error of a go-micro client call: nil stays nil,
// the caller's own context errors stay as they are, and anything else
// becomes an *Error. A dial failure, "service not found" and no node left
// to pick (go-micro's client never sent the request) are Unavailable and
// answer errors.Is for retry.NotSent's mark, selector.ErrNoNodes and
// selector.ErrAllTried, so that even a call that is not idempotent is
// retried on another node.
// An error that is not go-micro's but has a gRPC status (a CallWrapper's,
// an injected fault) keeps its code and answers errors.Is as before.
func FromMicro(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ge *Error
	if errors.As(err, &ge) {
		return err
	}
	// Only an error the client made itself can say the request never left:
	// mucp hands a server's answer over as a string (go-micro's JSON), and
	// a server that relays its own dependency's "connection error" must not
	// pass for a dial that failed here (the call would run twice).
	_, clientMade := merrors.As(err)
	if !clientMade {
		if st, ok := status.FromError(err); ok {
			return &Error{Micro: merrors.New("rpcguard", st.Message(), outcome.MicroCode(st.Code())).(*merrors.Error), code: st.Code(), cause: err, orig: err}
		}
	}
	me := merrors.FromError(err)
	code := outcome.FromHTTP(int(me.Code))
	if me.Code == 0 {
		code = codes.Unknown // not a go-micro error: a plain error counts as Unknown
	}
	e := &Error{Micro: me, code: code, orig: err}
	if cause := neverSent(me); cause != nil && clientMade {
		e.code, e.unsent, e.cause = codes.Unavailable, true, cause
	} else if clientMade && me.Code == 408 && strings.HasSuffix(me.Detail, context.Canceled.Error()) {
		e.code = codes.Canceled // go-micro's client says the caller's cancel as a 408
	} else if me.Id == "go.micro.client.transport" {
		// A broken connection (a node that crashed under a pooled
		// connection: broken pipe, unexpected EOF, reset): a transport
		// failure, not the server's Internal. It may have been sent.
		e.code = codes.Unavailable
	}
	return e
}

// neverSent reads go-micro's client errors (their Id and Detail: the code
// alone does not tell a transport failure from a server's answer) for
// those whose request never left the client, and returns what rpcguard's
// engines call them: no node for the service (selector.ErrNoNodes), none
// left to pick (selector.ErrAllTried), a dial that failed (retry.NotSent).
func neverSent(e *merrors.Error) error {
	client := strings.HasPrefix(e.Id, "go.micro.client")
	switch {
	case client && strings.HasSuffix(e.Detail, ": not found"):
		return selector.ErrNoNodes
	case client && (strings.HasPrefix(e.Detail, "error getting next ") || // mucp's client
		strings.HasPrefix(e.Detail, "error selecting ")): // the grpc client's
		return selector.ErrAllTried
	case client && strings.Contains(e.Detail, "connection error"),
		strings.Contains(e.Detail, "Error while dialing"): // the grpc client plugin's dial failure
		return retry.NotSent(errors.New("gomicro: the request never left the client"))
	}
	return nil
}

// ToMicro translates an error for a go-micro handler to return: a go-micro
// error stays as it is; any other error becomes one with the go-micro code
// of its gRPC status (status.Code; a plain error is a 500), so that callers
// over mucp and over the grpc plugin alike get the right code. id names the
// service (go-micro's convention).
func ToMicro(id string, err error) error {
	if err == nil {
		return nil
	}
	if me, ok := merrors.As(err); ok {
		return me
	}
	return merrors.New(id, status.Convert(err).Message(), outcome.MicroCode(status.Code(err)))
}
