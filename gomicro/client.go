package gomicro

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	mselector "go-micro.dev/v4/selector"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/faultinject"
	"github.com/rpcguard/rpcguard/outcome"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/shed"
	"github.com/rpcguard/rpcguard/stack"
	"github.com/rpcguard/rpcguard/tracing"
)

const component = "go-micro"

// Option configures the wrappers.
type Option func(*config) error

type config struct {
	stack    *stack.Stack
	stackOps []stack.Option
	faults   *faultinject.Injector
	shed     *shed.Limiter
	node     string            // the node a handler wrapper serves as, for faults
	sopts    []selector.Option // ServiceOptions' selector's
	wrapped  atomic.Pointer[guardClient]
}

// WithSelectorOptions sets the options of ServiceOptions' selector
// (NewSelector's: strategy, ejection, filters; default power of two choices
// and selector.DefaultEjection). Only ServiceOptions takes it; a wrapper
// given it refuses to build.
func WithSelectorOptions(opts ...selector.Option) Option {
	return func(c *config) error {
		if len(opts) == 0 {
			return fmt.Errorf("gomicro: WithSelectorOptions: no option")
		}
		c.sopts = opts
		return nil
	}
}

// WithStack sets the whole stack (stack.New): the same engines, and so the
// same circuits and budget, can then serve go-micro and gRPC clients alike.
// It excludes WithTracing, WithBreaker and WithRetry.
func WithStack(s *stack.Stack) Option {
	return func(c *config) error {
		if s == nil {
			return fmt.Errorf("gomicro: WithStack(nil)")
		}
		c.stack = s
		return nil
	}
}

// WithTracing sets the stack's tracing (stack.WithTracing; default: the
// global tracer).
func WithTracing(t *tracing.Tracing) Option { return withStackOption(stack.WithTracing(t)) }

// WithBreaker sets the stack's breaker (stack.WithBreaker; default: the
// namespace stack.DefaultNamespace and the defaults: no timeout, no
// concurrency limit).
func WithBreaker(b *breaker.Breaker) Option { return withStackOption(stack.WithBreaker(b)) }

// WithRetry sets the stack's retry policy (stack.WithRetry; default
// retry.New()); its method patterns name go-micro endpoints
// ("Greeter.Hello", "Greeter.*").
func WithRetry(p *retry.Policy) Option { return withStackOption(stack.WithRetry(p)) }

func withStackOption(o stack.Option) Option {
	return func(c *config) error { c.stackOps = append(c.stackOps, o); return nil }
}

// WithFaults injects inj's faults (nil: none, the default). In a handler
// wrapper, node is the ID of the node it serves as (go-micro's NAME-ID),
// matched by the rules' Node, and a fault comes before the handler, inside
// the breaker. In a call wrapper (NewCallWrapper), node is not used: a
// rule's Node is matched against the node each attempt goes to; Down,
// Code, HTTPStatus and Abort fail the attempt as never sent (another node
// is tried), Hang holds it until its deadline, Latency delays it. Header
// activation does not apply on go-micro.
func WithFaults(inj *faultinject.Injector, node string) Option {
	return func(c *config) error { c.faults, c.node = inj, node; return nil }
}

// WithShedder puts l in front of a handler or subscriber wrapper: a
// request that waited too long in a standing queue is refused with 429
// before any other work (see package shed; go-micro does not say when a
// request arrived, so its wait is the Go scheduler's). Off by default.
func WithShedder(l *shed.Limiter) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("gomicro: WithShedder(nil)")
		}
		c.shed = l
		return nil
	}
}

var errShedderOnClient = errors.New("gomicro: WithShedder is a server's option (NewHandlerWrapper, NewSubscriberWrapper, ServiceOptions)")

func build(opts []Option) (*config, error) {
	c := &config{}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("gomicro: nil Option")
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.stack != nil && len(c.stackOps) > 0 {
		return nil, fmt.Errorf("gomicro: WithStack excludes WithTracing, WithBreaker and WithRetry: set them in stack.New")
	}
	if c.stack == nil {
		var err error
		if c.stack, err = stack.New(c.stackOps...); err != nil {
			return nil, fmt.Errorf("gomicro: %w", err)
		}
	}
	return c, nil
}

// op names a go-micro call for the stack: its circuit and spans are
// "SERVICE ENDPOINT", its retry method the endpoint, its retry options
// what co says (go-micro's own retry settings and WithCallOptions). A ctx
// without a span continues the trace in its go-micro metadata, if any (a
// gateway hands its caller's trace on that way). decide translates an
// attempt's error for the engine, with go-micro's Retry func if co has one
// of the user's.
func (c *config) op(ctx context.Context, req client.Request, co client.CallOptions) (_ stack.Op, decide func(context.Context, client.Request, error) error) {
	ropts, decide := retryOptions(co)
	o := stack.Op{Name: req.Service() + " " + req.Endpoint(), Method: req.Endpoint(), Retry: ropts}
	if c.stack.Tracing().Enabled() { // the parent's closure costs an allocation; the no-op tracer reads none
		o.Span = tracing.SpanInfo{Component: component, PeerService: req.Service(), Parent: func(yield func(k, v string) bool) {
			md, _ := metadata.FromContext(ctx)
			pairs(md)(yield)
		}}
	}
	return o, decide
}

// pairs yields go-micro metadata as header pairs (tracing reads keys of
// any case).
func pairs(md metadata.Metadata) func(yield func(k, v string) bool) {
	return func(yield func(k, v string) bool) {
		for k, v := range md {
			if !yield(k, v) {
				return
			}
		}
	}
}

// NewClientWrapper returns a go-micro client.Wrapper: per call, a call span,
// the breaker (one circuit per "SERVICE ENDPOINT"), then rpcguard's retry
// engine, whose attempts are go-micro calls with go-micro's own retries
// off (so they never multiply: the seeds' client.Retries(3) is
// retry.WithMaxAttempts(4)), each with an attempt span, the call's record
// handed to the selector (use NewSelector as the client's selector: every
// attempt goes to a node the call has not tried), and the attempt's
// deadline as go-micro's ConnectionTimeout, which the server receives as
// its own. Hedged endpoints (retry.WithHedging) run their attempts side by
// side, each decoding into a reply of its own, and the winner's is copied
// into rsp. WithCallOptions overrides the policy for one call. Errors come
// back as go-micro's client returned them for the last attempt (the same
// type and value), rpcguard's own refusals as *errors.Error with Id
// IDBreaker or IDRetry; FromMicro reads any of them in gRPC's codes.
func NewClientWrapper(opts ...Option) (client.Wrapper, error) {
	c, err := buildWrapper(opts)
	if err != nil {
		return nil, err
	}
	if c.shed != nil {
		return nil, errShedderOnClient
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

// buildWrapper is build for a wrapper, which has no selector to configure.
func buildWrapper(opts []Option) (*config, error) {
	c, err := build(opts)
	if err == nil && c.sopts != nil {
		err = fmt.Errorf("gomicro: WithSelectorOptions is ServiceOptions' (or pass the options to NewSelector)")
	}
	return c, err
}

type guardClient struct {
	client.Client
	c *config
}

func (g *guardClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	op, decide := g.c.op(ctx, req, g.callOptions(opts))
	return toCaller(ctx, stack.DoInto(ctx, g.c.stack, op, rsp, func(actx context.Context, rsp any) error {
		actx = context.WithValue(actx, wrappedKey{}, true)
		err := g.Client.Call(g.c.outgoing(actx), req, rsp, attemptOptions(actx, opts)...)
		return decide(actx, req, err)
	}))
}

// retryKey carries per-call retry options in go-micro's call options.
type retryKey struct{}

// WithCallOptions overrides the client wrapper's retry policy for one call
// (retry.Idempotent, MaxAttempts, PerAttemptTimeout, ...), as a go-micro
// call option: client.Call(ctx, req, rsp, gomicro.WithCallOptions(...)).
func WithCallOptions(opts ...retry.CallOption) client.CallOption {
	return func(o *client.CallOptions) {
		if o.Context == nil {
			o.Context = context.Background()
		}
		prev, _ := o.Context.Value(retryKey{}).([]retry.CallOption)
		o.Context = context.WithValue(o.Context, retryKey{}, append(prev[:len(prev):len(prev)], opts...))
	}
}

// callOptions is the client's go-micro call options with a call's own.
func (g *guardClient) callOptions(opts []client.CallOption) client.CallOptions {
	co := g.Client.Options().CallOptions
	for _, o := range opts {
		o(&co)
	}
	return co
}

// go-micro's defaults (v4.11 and v5): 5 retries, decided by RetryOnError.
const microRetries = 5

var microRetry = reflect.ValueOf(client.RetryOnError).Pointer()

// retryOptions maps go-micro's retry settings onto the engine's, and adds
// WithCallOptions' (which win). client.Retries(n) (or per call
// client.WithRetries, or MICRO_CLIENT_RETRIES through go-micro's flags)
// other than go-micro's default 5 makes at most n+1 attempts. A Retry func
// of the user's (client.Retry, client.WithRetry) decides after each failed
// attempt whether the call goes on (as in go-micro: its error ends the call
// with that error); the engine's rules still apply on top: the budget, and
// no second attempt of a call that is not idempotent once one may have
// reached a server. go-micro's default RetryOnError leaves the decision to
// rpcguard's rules.
func retryOptions(co client.CallOptions) ([]retry.CallOption, func(context.Context, client.Request, error) error) {
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
		return ropts, func(_ context.Context, _ client.Request, err error) error { return FromMicro(err) }
	}
	return ropts, func(ctx context.Context, req client.Request, err error) error {
		if err == nil {
			return nil
		}
		a, _ := selector.AttemptFrom(ctx)
		again, rerr := fn(ctx, req, max(a.Number-1, 0), err)
		switch {
		case rerr != nil:
			return retry.Pushback(FromMicro(rerr), -1) // go-micro ends the call with the func's error
		case again:
			return retry.Retryable(FromMicro(err))
		}
		return retry.Pushback(FromMicro(err), -1)
	}
}

// attemptOptions makes one go-micro call an rpcguard attempt: no retries of
// its own (and no Retry func: the engine asks it), the call's record for
// the selector, and the attempt's deadline
// as go-micro's ConnectionTimeout (go-micro bounds an attempt by it, never
// by the context, and sends it to the server as its timeout).
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

// outgoing writes the attempt span into go-micro's metadata, in place of
// any trace header already there: go-micro relays a request's headers into
// its handler's context, and a remote peer's (non-ASCII baggage, a second
// Uber-Trace-Id of another case) must not reach, or break, a call the
// handler makes.
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

// toCaller hands a call's error to a go-micro caller as go-micro would
// have: the very error go-micro's client returned for the last attempt
// (same type and value: err.(*errors.Error) and errors.Equal keep working);
// the caller's context ending, as go-micro's 408; and rpcguard's own
// refusals as *errors.Error with the go-micro code of their meaning and an
// Id that names who refused (IDBreaker, IDRetry). FromMicro reads any of
// them back as gRPC codes.
func toCaller(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ge *Error
	switch {
	case errors.As(err, &ge) && ge.orig != nil:
		return ge.orig
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

// The Ids of the go-micro errors of rpcguard's own refusals: an open
// circuit or a full concurrency limit (503 and 429), and a retry budget
// spent or attempts exhausted before any attempt reached go-micro (503).
const (
	IDBreaker = "rpcguard.breaker"
	IDRetry   = "rpcguard.retry"
)

// Publish publishes through the stack's call level (stack.Guard): a span
// "publish TOPIC" (its trace reaches the subscribers in the message's
// headers) and the breaker (one circuit per topic, with its Timeout); not
// retried (a publish may have been delivered). Errors come back as
// go-micro's client returned them.
func (g *guardClient) Publish(ctx context.Context, msg client.Message, opts ...client.PublishOption) error {
	op := stack.Op{Name: "publish " + msg.Topic(), Span: tracing.SpanInfo{Component: component}}
	return toCaller(ctx, g.c.stack.Guard(ctx, op, func(ctx context.Context) error {
		return FromMicro(g.Client.Publish(g.c.outgoing(ctx), msg, opts...))
	}))
}

// Stream opens a stream through the stack (stack.Open): retried only while
// it opens (no per-attempt timeout: it would end the stream); its spans and
// its breaker slot end when the stream does: an error from Recv or Send
// (io.EOF is a success), Close, or the caller's context.
func (g *guardClient) Stream(ctx context.Context, req client.Request, opts ...client.CallOption) (client.Stream, error) {
	op, decide := g.c.op(ctx, req, g.callOptions(opts))
	st, end, err := stack.Open(ctx, g.c.stack, op, func(actx context.Context) (client.Stream, error) {
		s, err := g.Client.Stream(g.c.outgoing(actx), req, attemptOptions(actx, opts)...)
		return s, decide(actx, req, err)
	})
	if err != nil {
		return nil, toCaller(ctx, err)
	}
	return &guardStream{Stream: st, end: end}, nil
}

// guardStream ends its call when the stream ends.
type guardStream struct {
	client.Stream
	end func(error)
}

func (s *guardStream) Recv(m interface{}) error {
	err := s.Stream.Recv(m)
	if err != nil {
		s.end(FromMicro(eofIsSuccess(err)))
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

func eofIsSuccess(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
