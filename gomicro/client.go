package gomicro

import (
	"context"
	"errors"
	"io"
	"maps"
	"reflect"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	mselector "go-micro.dev/v4/selector"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/outcome"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/stack"
	"github.com/rpcguard/rpcguard/tracing"
)

const component = "go-micro"

// The Ids of the go-micro errors of rpcguard's own refusals: an open
// circuit or a full concurrency limit (503, 429), and a retry budget spent
// or attempts exhausted before any attempt reached go-micro (503).
const (
	IDBreaker = "rpcguard.breaker"
	IDRetry   = "rpcguard.retry"
)

// NewClientWrapper returns a go-micro client.Wrapper that runs each call
// through the stack (package stack): a call span, the breaker (a circuit
// per "SERVICE ENDPOINT"), rpcguard's retry engine in place of go-micro's
// (its Retries and Retry func are honoured on it: client.Retries(3) is
// retry.WithMaxAttempts(4)), an attempt span per attempt. Each attempt
// hands the call's record to the selector (with NewSelector, it goes to a
// node the call has not tried), and its deadline as go-micro's
// ConnectionTimeout, which the server takes as its own. Hedged attempts
// decode into replies of their own; the winner's is copied into rsp.
// WithCallOptions overrides the policy for one call. The caller gets the
// error go-micro returned for the last attempt (same type and value), or
// rpcguard's refusal as an *errors.Error of Id IDBreaker or IDRetry.
func NewClientWrapper(opts ...Option) (client.Wrapper, error) {
	c, err := build(opts, forClient)
	if err != nil {
		return nil, err
	}
	return c.clientWrapper(), nil
}

func (c *config) clientWrapper() client.Wrapper {
	return func(next client.Client) client.Client {
		g := &guardClient{Client: next, c: c}
		c.wrapped.Store(g)
		return g
	}
}

type guardClient struct {
	client.Client
	c *config
}

func (g *guardClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	op, decide := g.op(ctx, req, opts)
	return toCaller(ctx, stack.DoInto(ctx, g.c.stack, op, rsp, func(actx context.Context, rsp any) error {
		actx = context.WithValue(actx, wrappedKey{}, true)
		return decide(actx, g.Client.Call(g.c.outgoing(actx), req, rsp, attemptOptions(actx, opts)...))
	}))
}

// Stream opens a stream through the stack (stack.Open): retried only while
// it opens; its spans and breaker slot end with it (an error from Recv or
// Send, io.EOF being a success; Close; or the caller's context).
func (g *guardClient) Stream(ctx context.Context, req client.Request, opts ...client.CallOption) (client.Stream, error) {
	op, decide := g.op(ctx, req, opts)
	st, end, err := stack.Open(ctx, g.c.stack, op, func(actx context.Context) (client.Stream, error) {
		s, err := g.Client.Stream(g.c.outgoing(actx), req, attemptOptions(actx, opts)...)
		return s, decide(actx, err)
	})
	if err != nil {
		return nil, toCaller(ctx, err)
	}
	return &guardStream{Stream: st, end: end}, nil
}

// Publish publishes through the stack's call level (stack.Guard): a span
// "publish TOPIC", whose trace reaches the subscribers, and the breaker (a
// circuit per topic); never retried (it may have been delivered).
func (g *guardClient) Publish(ctx context.Context, msg client.Message, opts ...client.PublishOption) error {
	op := stack.Op{Name: "publish " + msg.Topic(), Span: tracing.SpanInfo{Component: component}}
	return toCaller(ctx, g.c.stack.Guard(ctx, op, func(ctx context.Context) error {
		return FromMicro(g.Client.Publish(g.c.outgoing(ctx), msg, opts...))
	}))
}

// op names a call for the stack: circuit and spans "SERVICE ENDPOINT",
// retry method the endpoint, retry options from go-micro's call options; a
// ctx without a span continues the trace in its go-micro metadata (a
// gateway hands its caller's on that way). decide reads an attempt's error
// for the engine.
func (g *guardClient) op(ctx context.Context, req client.Request, opts []client.CallOption) (stack.Op, func(context.Context, error) error) {
	co := g.Client.Options().CallOptions
	for _, o := range opts {
		o(&co)
	}
	ropts, decide := retryOptions(req, co)
	o := stack.Op{Name: req.Service() + " " + req.Endpoint(), Method: req.Endpoint(), Retry: ropts}
	if g.c.stack.Tracing().Enabled() { // the closure costs an allocation; the no-op tracer needs none
		o.Span = tracing.SpanInfo{Component: component, PeerService: req.Service(), Parent: func(yield func(k, v string) bool) {
			md, _ := metadata.FromContext(ctx)
			maps.All(md)(yield)
		}}
	}
	return o, decide
}

// retryKey carries WithCallOptions' options in go-micro's call options.
type retryKey struct{}

// WithCallOptions overrides the client wrapper's retry policy for one call
// (retry.Idempotent, MaxAttempts, ...), as a go-micro call option.
func WithCallOptions(opts ...retry.CallOption) client.CallOption {
	return func(o *client.CallOptions) {
		if o.Context == nil {
			o.Context = context.Background()
		}
		prev, _ := o.Context.Value(retryKey{}).([]retry.CallOption)
		o.Context = context.WithValue(o.Context, retryKey{}, append(prev[:len(prev):len(prev)], opts...))
	}
}

// go-micro's default retries (v4.11 and v5), decided by RetryOnError.
const microRetries = 5

var microRetry = reflect.ValueOf(client.RetryOnError).Pointer()

// retryOptions maps go-micro's retry settings onto the engine's, with
// WithCallOptions' last: Retries other than go-micro's default 5 is
// MaxAttempts(Retries+1); a Retry func of the user's decides after each
// failed attempt whether the call goes on (its error ends the call, as in
// go-micro), within the engine's rules (the budget; no second attempt of a
// call that is not idempotent once one may have reached a server).
func retryOptions(req client.Request, co client.CallOptions) ([]retry.CallOption, func(context.Context, error) error) {
	var ropts []retry.CallOption
	if co.Retries != microRetries {
		ropts = append(ropts, retry.MaxAttempts(max(co.Retries, 0)+1))
	}
	if co.Context != nil {
		own, _ := co.Context.Value(retryKey{}).([]retry.CallOption)
		ropts = append(ropts, own...)
	}
	fn := co.Retry
	if fn == nil || reflect.ValueOf(fn).Pointer() == microRetry {
		return ropts, func(_ context.Context, err error) error { return FromMicro(err) }
	}
	return ropts, func(ctx context.Context, err error) error {
		if err == nil {
			return nil
		}
		a, _ := selector.AttemptFrom(ctx)
		switch again, rerr := fn(ctx, req, max(a.Number-1, 0), err); {
		case rerr != nil:
			return retry.Pushback(FromMicro(rerr), -1)
		case again:
			return retry.Retryable(FromMicro(err))
		}
		return retry.Pushback(FromMicro(err), -1)
	}
}

// attemptOptions makes a go-micro call one attempt: no retries of its own,
// the call's record for the selector, and the attempt's deadline as
// ConnectionTimeout (go-micro bounds an attempt by it, not by ctx, and
// sends it to the server).
func attemptOptions(actx context.Context, opts []client.CallOption) []client.CallOption {
	out := append(opts[:len(opts):len(opts)], client.WithRetries(0), client.WithRetry(noRetry),
		client.WithSelectOption(func(o *mselector.SelectOptions) { o.Context = actx }))
	if dl, ok := actx.Deadline(); ok {
		d := time.Until(dl)
		out = append(out, func(o *client.CallOptions) { o.ConnectionTimeout, o.RequestTimeout = d, d })
	}
	return out
}

func noRetry(context.Context, client.Request, int, error) (bool, error) { return false, nil }

// outgoing puts the attempt span in go-micro's metadata in place of any
// trace header there: go-micro hands a request's headers on to the calls
// its handler makes, and a remote peer's must not reach them.
func (c *config) outgoing(ctx context.Context) context.Context {
	tg := c.stack.Tracing()
	if !tg.Enabled() {
		return ctx
	}
	in, _ := metadata.FromContext(ctx)
	md := make(metadata.Metadata, len(in)+2)
	for k, v := range in {
		if !tg.IsTraceHeader(k) {
			md[k] = v
		}
	}
	tg.Inject(ctx, func(k, v string) { md[k] = v })
	return metadata.NewContext(ctx, md)
}

// toCaller gives a call's error to a go-micro caller as go-micro would:
// the error its client returned for the last attempt, the caller's context
// ending as its 408, and rpcguard's refusals as *errors.Error.
func toCaller(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var oe *outcome.Error
	switch {
	case errors.As(err, &oe):
		return oe.Errs[0]
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return merrors.Timeout("go.micro.client", "call timeout: %v", ctx.Err())
	}
	id := "rpcguard"
	var refused *breaker.RefusedError
	switch {
	case errors.Is(err, breaker.ErrOpen) || errors.As(err, &refused):
		id = IDBreaker
	case errors.Is(err, retry.ErrBudgetExhausted) || errors.Is(err, retry.ErrAttemptsExhausted):
		id = IDRetry
	}
	return merrors.New(id, err.Error(), outcome.MicroCode(status.Code(err)))
}

// guardStream ends its call when the stream ends.
type guardStream struct {
	client.Stream
	end func(error)
}

func (s *guardStream) Recv(m interface{}) error {
	err := s.Stream.Recv(m)
	if errors.Is(err, io.EOF) {
		s.end(nil)
	} else if err != nil {
		s.end(FromMicro(err))
	}
	return err
}

func (s *guardStream) Send(m interface{}) error {
	err := s.Stream.Send(m)
	if err != nil && !errors.Is(err, io.EOF) { // io.EOF: the status waits in Recv
		s.end(FromMicro(err))
	}
	return err
}

// Close ends the stream and its call (a success: the caller was done).
func (s *guardStream) Close() error {
	err := s.Stream.Close()
	s.end(nil)
	return err
}
