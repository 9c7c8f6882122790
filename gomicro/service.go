package gomicro

import (
	micro "go-micro.dev/v4"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	mselector "go-micro.dev/v4/selector"
)

// ServiceOptions is the one line for a go-micro service, as
// rpcguard.NewClient is for gRPC: an rpcguard selector on reg (NewSelector
// with WithSelectorOptions' options) and the client, handler and
// subscriber wrappers, sharing opts and one stack. Pass them to
// micro.NewService after micro.Client, micro.Server and micro.Registry
// (go-micro's options act on the client and server set before them), and
// call close when the service ends:
//
//	rg, closeRG, err := gomicro.ServiceOptions(reg, gomicro.WithRetry(policy))
//	svc := micro.NewService(append([]micro.Option{micro.Name("greeter"),
//		micro.Client(cli), micro.Server(srv), micro.Registry(reg)}, rg...)...)
//	defer closeRG()
//
// A micro.Selector after them undoes rpcguard's selector: the service
// warns of it (go-micro's logger) when it starts.
func ServiceOptions(reg registry.Registry, opts ...Option) (_ []micro.Option, close func() error, _ error) {
	c, err := build(opts, forService)
	if err != nil {
		return nil, nil, err
	}
	sel, err := NewSelector(reg, c.sopts...)
	if err != nil {
		return nil, nil, err
	}
	check := func() error {
		if g := c.wrapped.Load(); g == nil || g.Options().Selector != mselector.Selector(sel) {
			logger.Logf(logger.WarnLevel, "gomicro: the service's client does not use ServiceOptions' selector or client wrapper "+
				"(a micro.Selector after ServiceOptions replaced it): calls may go back to nodes they tried and bad nodes are not ejected")
		}
		return nil
	}
	return []micro.Option{micro.Selector(sel), micro.WrapClient(c.clientWrapper()), micro.WrapHandler(c.handlerWrapper()),
		micro.WrapSubscriber(c.subscriberWrapper()), micro.AfterStart(check)}, sel.Close, nil
}
