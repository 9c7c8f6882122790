package gomicro

import (
	"context"
	"strings"

	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"

	"github.com/rpcguard/rpcguard/tracing"
)

// NewHandlerWrapper returns a go-micro server.HandlerWrapper: a server span
// (child of the caller's attempt span, from go-micro's metadata), the
// breaker per "SERVICE ENDPOINT" (a handler whose dependency keeps failing
// sheds load: 503 when its circuit is open, 429 past a concurrency limit),
// and errors that leave as go-micro errors with the code of their meaning
// (ToMicro); with WithFaults, the faults of the node it serves as, before
// the handler. A panicking handler releases its slot and panics on.
func NewHandlerWrapper(opts ...Option) (server.HandlerWrapper, error) {
	c, err := build(opts)
	if err != nil {
		return nil, err
	}
	return func(h server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			name := req.Service() + " " + req.Endpoint()
			md, _ := metadata.FromContext(ctx)
			ctx, finish := c.tg.StartServer(ctx, name, func(yield func(k, v string) bool) {
				for k, v := range md {
					if !yield(strings.ToLower(k), v) {
						return
					}
				}
			}, tracing.Component(component))
			adm, err := c.brk.Allow(ctx, name)
			if err != nil {
				finish(err)
				return ToMicro(req.Service(), err)
			}
			returned := false
			defer func() {
				if !returned {
					adm.Abandon()
				}
			}()
			if c.faults != nil {
				err = c.faults.Apply(ctx, req.Service(), req.Endpoint(), c.node, "")
			}
			if err == nil {
				err = FromMicro(h(ctx, req, rsp)) // the handler's go-micro errors, read by their code
			}
			returned = true
			err = adm.Done(err)
			finish(err)
			return ToMicro(req.Service(), err)
		}
	}, nil
}
