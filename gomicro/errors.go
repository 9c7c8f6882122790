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

// go-micro's codes are HTTP statuses, read by package outcome's one table
// (FromHTTP, MicroCode); this file reads what only go-micro's own client
// errors say, in their Id and Detail.

// FromMicro reads an error of a go-micro client call in gRPC's terms: nil
// and the caller's context errors stay as they are; anything else becomes
// an *outcome.Error whose first error is err itself (go-micro's errors.As,
// FromError and Parse still find its *errors.Error). A dial failure, "service not found" and
// no node left to pick (the request never left the client) are Unavailable
// and Unsent, and answer errors.Is for retry.NotSent's mark,
// selector.ErrNoNodes and selector.ErrAllTried: even a call that is not
// idempotent then goes to another node. A broken pooled connection is
// Unavailable; a cancel that go-micro reports as 408, Canceled; an error
// with a gRPC status that go-micro did not make keeps its code.
func FromMicro(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var oe *outcome.Error // declared past the nil check: its address escapes
	if errors.As(err, &oe) {
		return err
	}
	// Only an error the client made itself can say the request never left:
	// mucp hands a server's answer over as a string, and a server relaying
	// its own dependency's "connection error" is not a dial that failed here.
	_, clientMade := merrors.As(err)
	if st, ok := status.FromError(err); ok && !clientMade { // a go-micro error too, for go-micro's parsers
		me := merrors.New("rpcguard", st.Message(), outcome.MicroCode(st.Code())).(*merrors.Error)
		return &outcome.Error{Errs: []error{err, me}, Code: st.Code(), Msg: st.Message(), Text: me.Error()}
	}
	me := merrors.FromError(err)
	e := &outcome.Error{Errs: []error{err}, Code: outcome.FromHTTP(int(me.Code)), Msg: me.Detail}
	if error(me) != err {
		e.Errs = append(e.Errs, me) // parsed from a server's answer
	}
	client := clientMade && strings.HasPrefix(me.Id, "go.micro.client")
	var never error // why the request never left the client
	switch d := me.Detail; {
	case me.Code == 0:
		e.Code = codes.Unknown // not go-micro's: a plain error
	case client && strings.HasSuffix(d, ": not found"):
		never = selector.ErrNoNodes
	case client && (strings.HasPrefix(d, "error getting next ") || strings.HasPrefix(d, "error selecting ")): // mucp's, grpc's
		never = selector.ErrAllTried
	case client && strings.Contains(d, "connection error"), clientMade && strings.Contains(d, "Error while dialing"): // the grpc plugin's
		never = retry.NotSent(errors.New("gomicro: the request never left the client"))
	case clientMade && me.Code == 408 && strings.HasSuffix(d, context.Canceled.Error()):
		e.Code = codes.Canceled
	case me.Id == "go.micro.client.transport": // a node that crashed under a pooled connection: it may have been sent
		e.Code = codes.Unavailable
	}
	if never != nil {
		e.Code, e.Unsent, e.Errs = codes.Unavailable, true, append(e.Errs, never)
	}
	return e
}

// ToMicro translates an error for a go-micro handler to return: a go-micro
// error stays as it is; any other becomes one with the go-micro code of its
// gRPC status (a plain error is a 500), so that callers over mucp and the
// grpc plugin alike get the right code. id names the service.
func ToMicro(id string, err error) error {
	if err == nil {
		return nil
	}
	if me, ok := merrors.As(err); ok {
		return me
	}
	return merrors.New(id, status.Convert(err).Message(), outcome.MicroCode(status.Code(err)))
}
