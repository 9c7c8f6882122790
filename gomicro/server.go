package gomicro

import (
	"context"

	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"

	"github.com/rpcguard/rpcguard/shed"
	"github.com/rpcguard/rpcguard/stack"
	"github.com/rpcguard/rpcguard/tracing"
)

// NewHandlerWrapper returns a go-micro server.HandlerWrapper: the server
// stack (stack.Serve): a server span (child of the caller's attempt span,
// from go-micro's metadata), the breaker per endpoint (a handler whose
// dependency keeps failing sheds load: 503 when its circuit is open, 429
// past a concurrency limit; with a Timeout, the handler's context ends at
// it), and errors that leave as go-micro errors with the code of their
// meaning (ToMicro); with WithFaults, the faults of the node it serves as,
// before the handler. A panicking handler releases its slot, ends its span
// and panics on. Circuits and spans are named by the endpoint go-micro
// routed the request to ("Greeter.Hello", a handler the server registered),
// never by the service name the client sent (mucp takes it from the
// client's header: a remote client could make circuits at will). With a
// server Router of your own, routing comes after the wrappers: name only
// known endpoints there.
func NewHandlerWrapper(opts ...Option) (server.HandlerWrapper, error) {
	c, err := buildWrapper(opts)
	if err != nil {
		return nil, err
	}
	return c.handlerWrapper(), nil
}

// NewSubscriberWrapper returns a go-micro server.SubscriberWrapper: the
// server stack (stack.Serve) for every message a subscriber handles: a
// server span "subscribe TOPIC" (child of the publisher's span, from the
// message's headers), the breaker per topic (the topics the server
// subscribed to: go-micro routes no other to a subscriber), and, with
// WithFaults, the faults of the node it serves as. The handler's error goes
// back to go-micro as it returned it.
func NewSubscriberWrapper(opts ...Option) (server.SubscriberWrapper, error) {
	c, err := buildWrapper(opts)
	if err != nil {
		return nil, err
	}
	return c.subscriberWrapper(), nil
}

func (c *config) subscriberWrapper() server.SubscriberWrapper {
	return func(next server.SubscriberFunc) server.SubscriberFunc {
		return func(ctx context.Context, msg server.Message) error {
			return toCaller(ctx, c.serve(ctx, "subscribe "+msg.Topic(), false, msg.Topic(), "subscribe",
				func(ctx context.Context) error { return next(ctx, msg) }))
		}
	}
}

func (c *config) handlerWrapper() server.HandlerWrapper {
	return func(h server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			return ToMicro(req.Service(), c.serve(ctx, req.Endpoint(), req.Stream(), req.Service(), req.Endpoint(),
				func(ctx context.Context) error { return h(ctx, req, rsp) }))
		}
	}
}

// serve runs a handler or subscriber through the server stack as name (a
// server span under the trace in go-micro's metadata, the breaker), after
// the faults of the node it serves as for service and method, and after
// WithShedder's Limiter admitted it; the handler's go-micro errors are read
// by their code (FromMicro).
func (c *config) serve(ctx context.Context, name string, stream bool, service, method string, handle func(ctx context.Context) error) error {
	if c.shed != nil {
		var t shed.Token
		var err error
		if stream {
			t, err = c.shed.AcquireStream(ctx)
		} else {
			t, err = c.shed.Acquire(ctx)
		}
		if err != nil {
			return err
		}
		defer t.Release()
	}
	md, _ := metadata.FromContext(ctx)
	return c.stack.Serve(ctx, stack.ServerOp{Name: name, Stream: stream, Span: tracing.SpanInfo{Component: component, Parent: pairs(md)}},
		func(ctx context.Context) error {
			if c.faults != nil {
				if err := c.faults.Apply(ctx, service, method, c.node, ""); err != nil {
					return err
				}
			}
			return FromMicro(handle(ctx))
		})
}
