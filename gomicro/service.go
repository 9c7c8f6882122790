package gomicro

import (
	micro "go-micro.dev/v4"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
)

// ServiceOptions is the one line for a go-micro service, as
// rpcguard.NewClient is for gRPC: an rpcguard selector on reg (NewSelector),
// the client wrapper (NewClientWrapper) and the handler wrapper
// (NewHandlerWrapper), sharing opts. Pass them to micro.NewService after
// micro.Client, micro.Server and micro.Registry (go-micro's options act on
// the client and server set before them), and call close when the service
// ends:
//
//	rg, closeRG, err := gomicro.ServiceOptions(reg, gomicro.WithRetry(policy))
//	svc := micro.NewService(append([]micro.Option{micro.Name("greeter"),
//		micro.Client(cli), micro.Server(srv), micro.Registry(reg)}, rg...)...)
//	defer closeRG()
func ServiceOptions(reg registry.Registry, opts ...Option) (_ []micro.Option, close func() error, _ error) {
	sel, err := NewSelector(reg)
	if err != nil {
		return nil, nil, err
	}
	cw, err := NewClientWrapper(opts...)
	if err != nil {
		return nil, nil, err
	}
	hw, err := NewHandlerWrapper(opts...)
	if err != nil {
		return nil, nil, err
	}
	return []micro.Option{micro.Selector(selector.Selector(sel)), micro.WrapClient(cw), micro.WrapHandler(hw)}, sel.Close, nil
}
