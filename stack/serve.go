package stack

import (
	"context"
	"fmt"
	"net/http"

	"github.com/rpcguard/rpcguard/tracing"
)

// ServerOp names one served call for the stack.
type ServerOp struct {
	// Name is the server span's operation and the breaker's command. It
	// must come from the server's own configuration (its registered
	// services and methods), never from what a remote client sent: a name
	// from the wire would let a client create circuits at will.
	Name string
	// Span tags the server span (its component), and its Parent yields
	// the incoming request's headers (keys of any case; only trace headers
	// within the tracing's size bound are read).
	Span tracing.SpanInfo
	// Stream: a long-lived call; the breaker's Timeout does not apply.
	Stream bool
}

// Serve runs a handler through the server's stack: the server span (child
// of the caller's attempt span), then the breaker (a handler whose own
// dependency keeps failing sheds load: ErrOpen, ErrRejected past a
// concurrency limit; with a Timeout, the handler's context ends at it,
// except for a Stream), then handler. If handler panics, the breaker's slot
// is released and counted as a failure, the span ends, and the panic goes
// on, for the transport's own recovery.
func (s *Stack) Serve(ctx context.Context, op ServerOp, handler func(ctx context.Context) error) error {
	if s == nil || handler == nil {
		return fmt.Errorf("stack: Serve(%q): nil Stack or handler", op.Name)
	}
	ctx, finish := s.tg.StartServer(ctx, op.Name, op.Span)
	returned := false
	defer func() {
		if !returned {
			finish(errPanicked)
		}
	}()
	var err error
	if op.Stream {
		err = s.serveStream(ctx, op.Name, handler)
	} else {
		err = s.brk.Do(ctx, op.Name, handler)
	}
	returned = true
	finish(err)
	return err
}

// serveStream is the breaker's two-step form: no Timeout for a stream.
func (s *Stack) serveStream(ctx context.Context, name string, handler func(ctx context.Context) error) error {
	adm, err := s.brk.Allow(ctx, name)
	if err != nil {
		return err
	}
	returned := false
	defer func() {
		if !returned {
			adm.Abandon()
		}
	}()
	err = handler(ctx)
	returned = true
	return adm.Done(err)
}

// Middleware is the server stack for net/http: the tracing's server span
// outside the breaker's per-route circuit (see tracing.Middleware and
// breaker.Middleware for how routes are named and statuses read).
func (s *Stack) Middleware(next http.Handler) http.Handler {
	return s.tg.Middleware(s.brk.Middleware(next))
}
