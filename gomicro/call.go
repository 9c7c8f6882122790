package gomicro

import (
	"context"
	"errors"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"

	"github.com/rpcguard/rpcguard/outcome"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
)

// wrappedKey marks a go-micro call that is an attempt of NewClientWrapper's
// (it has its attempt span already).
type wrappedKey struct{}

// NewCallWrapper returns a go-micro client.CallWrapper, which go-micro runs
// for every attempt with its node: that node's client-side faults
// (WithFaults), and, unless the call is an attempt of NewClientWrapper's,
// an attempt span tagged with the node, for clients that keep go-micro's
// own retry loop. The outcome reaches the selector through go-micro's
// Selector.Mark. Put it with micro.WrapCall or client.WrapCall.
func NewCallWrapper(opts ...Option) (client.CallWrapper, error) {
	c, err := build(opts, forClient)
	if err != nil {
		return nil, err
	}
	return func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, o client.CallOptions) error {
			finish := func(error) {}
			if tg := c.stack.Tracing(); ctx.Value(wrappedKey{}) == nil && tg.Enabled() {
				n := selector.Node{ID: node.Id, Addr: node.Address, Metadata: node.Metadata}
				ctx, finish = tg.StartAttempt(ctx, req.Service()+" "+req.Endpoint(), tracing.SpanInfo{Component: component, Node: n})
				ctx = c.outgoing(ctx)
			}
			err := c.clientFaults(ctx, req, node.Id)
			if err == nil {
				err = next(ctx, node, req, rsp, o)
			}
			finish(FromMicro(err))
			return err
		}
	}, nil
}

// clientFaults applies the faults of the node an attempt goes to: an
// injected error that came before the attempt's context ended never left
// the client.
func (c *config) clientFaults(ctx context.Context, req client.Request, node string) error {
	if c.faults == nil {
		return nil
	}
	err := c.faults.Apply(ctx, req.Service(), req.Endpoint(), node, "")
	var e *outcome.Error
	if err == nil || ctx.Err() != nil || !errors.As(FromMicro(err), &e) {
		return err // none, a Hang or a Latency cut short by the deadline
	}
	e.Unsent, e.Errs = true, append(e.Errs, retry.NotSent(err))
	return e
}
