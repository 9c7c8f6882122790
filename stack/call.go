package stack

import (
	"context"
	"fmt"
	"reflect"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
)

// Op names one call for the stack. Every name in it must come from the
// caller's configuration or code, never from a remote peer: it names a
// circuit and a span.
type Op struct {
	// Name is the call span's operation and the breaker's command: a gRPC
	// full method, go-micro's "SERVICE ENDPOINT", an HTTP route.
	Name string
	// Method is what the retry policy's patterns match (WithIdempotent,
	// WithHedging); "" means Name.
	Method string
	// Span tags the call and attempt spans (component, peer service).
	Span tracing.SpanInfo
	// Retry overrides the policy for this call.
	Retry []retry.CallOption
	// NoHedge runs the attempts one at a time even where the policy hedges
	// the method: for attempts that share one reply.
	NoHedge bool
}

func (o *Op) method() string {
	if o.Method != "" {
		return o.Method
	}
	return o.Name
}

// errPanicked ends the span of a call whose code panicked; the panic goes on.
var errPanicked = status.Error(codes.Internal, "stack: panic in the call")

// Guard runs the call level of the stack around fn: the call span, then the
// breaker (refusing at once while the circuit is open; with a Timeout, fn's
// context ends at it), then fn, which runs the call's attempts (a retry
// adapter). If fn panics, the breaker's slot is released and counted as a
// failure, the span ends, and the panic goes on. Do is Guard with
// rpcguard's retry engine inside; transports whose retries need their own
// adapter (gRPC's) use Guard directly.
func (s *Stack) Guard(ctx context.Context, op Op, fn func(ctx context.Context) error) error {
	if s == nil || fn == nil {
		return fmt.Errorf("stack: Guard(%q): nil Stack or function", op.Name)
	}
	ctx, finish := s.tg.StartCall(ctx, op.Name, op.Span)
	returned := false
	defer func() {
		if !returned {
			finish(errPanicked)
		}
	}()
	err := s.brk.Do(ctx, op.Name, fn)
	returned = true
	finish(err)
	return err
}

// Do runs one call through the whole stack: Guard, then rpcguard's retry
// engine (retry.Hedge: one attempt at a time, or side by side where the
// policy hedges the method and op allows it), each attempt under an attempt
// span. attempt
// runs one attempt with its context: send the request there, and inject
// the trace headers with s.Tracing().Inject. It returns the value of the
// attempt that succeeded.
func Do[T any](ctx context.Context, s *Stack, op Op, attempt func(ctx context.Context) (T, error)) (T, error) {
	if attempt == nil {
		var zero T
		return zero, fmt.Errorf("stack: Do(%q): nil attempt function", op.Name)
	}
	if op.NoHedge {
		return doOne(ctx, s, op, attempt)
	}
	var v T
	err := s.Guard(ctx, op, func(ctx context.Context) error {
		var err error
		v, err = retry.Hedge(ctx, s.policy, op.method(), func(actx context.Context) (T, error) {
			return traced(actx, s, op, attempt)
		}, op.Retry...)
		return err
	})
	return v, err
}

// doOne is Do one attempt at a time (retry.Run): nothing it is given has to
// leave the stack, as a hedge's goroutines would make it.
func doOne[T any](ctx context.Context, s *Stack, op Op, attempt func(ctx context.Context) (T, error)) (T, error) {
	var v T
	err := s.Guard(ctx, op, func(ctx context.Context) error {
		var err error
		v, err = retry.Run(ctx, s.policy, op.method(), func(actx context.Context) (T, error) {
			return traced(actx, s, op, attempt)
		}, op.Retry...)
		return err
	})
	return v, err
}

// DoInto is Do for a transport whose attempts decode into a reply the
// caller passed (a non-nil pointer): where the policy hedges op's method,
// each attempt decodes into a new value of the reply's type and the
// winner's is copied into reply; otherwise the attempts share reply, one at
// a time.
func DoInto(ctx context.Context, s *Stack, op Op, reply any, attempt func(ctx context.Context, reply any) error) error {
	if s == nil || attempt == nil {
		return fmt.Errorf("stack: DoInto(%q): nil Stack or attempt function", op.Name)
	}
	into := reflect.ValueOf(reply)
	if into.Kind() != reflect.Pointer || into.IsNil() || !s.policy.Hedged(op.method(), op.Retry...) {
		_, err := doOne(ctx, s, op, func(actx context.Context) (struct{}, error) { return struct{}{}, attempt(actx, reply) })
		return err
	}
	won, err := Do(ctx, s, op, func(actx context.Context) (reflect.Value, error) {
		own := reflect.New(into.Type().Elem())
		return own, attempt(actx, own.Interface())
	})
	if err == nil {
		into.Elem().Set(won.Elem())
	}
	return err
}

// traced runs one attempt under its attempt span, which ends even when the
// attempt panics.
func traced[T any](ctx context.Context, s *Stack, op Op, attempt func(ctx context.Context) (T, error)) (T, error) {
	ctx, done := s.tg.StartAttempt(ctx, op.Name, op.Span)
	returned := false
	defer func() {
		if !returned {
			done(errPanicked)
		}
	}()
	v, err := attempt(ctx)
	returned = true
	done(err)
	return v, err
}

// Call is Do for a client of any transport that picks its node from sel
// (retry.Call inside Guard): each attempt goes to a node of sel the call
// has not tried, under an attempt span tagged with it, and its outcome goes
// back to sel. fn returns nil on success; wrap an error with retry.NotSent
// when the attempt never reached the node (a call that is not idempotent
// is then retried too).
func Call[T any](ctx context.Context, s *Stack, sel *selector.Selector, op Op, fn func(ctx context.Context, node selector.Node) (T, error)) (T, error) {
	var v T
	if fn == nil {
		return v, fmt.Errorf("stack: Call(%q): nil function", op.Name)
	}
	ropts := append(op.Retry[:len(op.Retry):len(op.Retry)], retry.Method(op.method()))
	err := s.Guard(ctx, op, func(ctx context.Context) error {
		var err error
		v, err = retry.Call(ctx, s.policy, sel, func(actx context.Context, n selector.Node) (T, error) {
			return traced(actx, s, op, func(actx context.Context) (T, error) { return fn(actx, n) })
		}, ropts...)
		return err
	})
	return v, err
}
