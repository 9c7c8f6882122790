package gomicro

import (
	"context"
	"maps"

	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"

	"github.com/rpcguard/rpcguard/shed"
	"github.com/rpcguard/rpcguard/stack"
	"github.com/rpcguard/rpcguard/tracing"
)

// NewHandlerWrapper returns a go-micro server.HandlerWrapper running each
// request through the server stack (stack.Serve): a server span under the
// caller's attempt span, the breaker per endpoint (503 while its circuit is
// open, 429 past its concurrency limit; its Timeout ends the handler's
// context), WithFaults' faults before the handler, and errors as go-micro
// errors with the code of their meaning (ToMicro). A panicking handler
// frees its slot, ends its span and panics on. Circuits and spans are named
// by the endpoint go-micro routed the request to, never by the service name
// the client sent (a remote client could make circuits at will); with a
// Router of your own, routing comes after the wrappers: name only known
// endpoints there.
func NewHandlerWrapper(opts ...Option) (server.HandlerWrapper, error) {
	c, err := build(opts, forServer)
	if err != nil {
		return nil, err
	}
	return c.handlerWrapper(), nil
}

// NewSubscriberWrapper returns a go-micro server.SubscriberWrapper: the
// server stack for every message a subscriber handles, with a span
// "subscribe TOPIC" under the publisher's and a circuit per topic (those
// the server subscribed to). The handler's error goes back as it was.
func NewSubscriberWrapper(opts ...Option) (server.SubscriberWrapper, error) {
	c, err := build(opts, forServer)
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

// serve runs a handler as name through WithShedder's Limiter, then the
// server stack and the faults for service and method.
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
	return c.stack.Serve(ctx, stack.ServerOp{Name: name, Stream: stream, Span: tracing.SpanInfo{Component: component, Parent: maps.All(md)}},
		func(ctx context.Context) error {
			if c.faults != nil {
				if err := c.faults.Apply(ctx, service, method, c.node, ""); err != nil {
					return err
				}
			}
			return FromMicro(handle(ctx))
		})
}
