package gomicro_test

import (
	"testing"
	"time"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"
)

// kind is how go-micro servers and clients talk: mucp over go-micro's HTTP
// transport (its default), or the grpc client and server plugins.
type kind struct {
	name        string
	server      func(opts ...server.Option) server.Server
	client      func(opts ...client.Option) client.Client
	contentType string
}

var (
	mucp = kind{name: "mucp",
		server: func(opts ...server.Option) server.Server {
			return server.NewServer(append([]server.Option{server.Transport(transport.NewHTTPTransport())}, opts...)...)
		},
		client: func(opts ...client.Option) client.Client {
			return client.NewClient(append([]client.Option{client.Transport(transport.NewHTTPTransport())}, opts...)...)
		},
		contentType: "application/json"}
	// go-micro clients have no Close: the grpc plugin's clients keep no
	// idle connection, which would outlive the test.
	grpcKind = kind{name: "grpc", server: grpcserver.NewServer,
		client: func(opts ...client.Option) client.Client {
			return grpcclient.NewClient(append([]client.Option{grpcclient.PoolMaxIdle(0)}, opts...)...)
		},
		contentType: "application/grpc+json"}
	kinds = []kind{mucp, grpcKind}
)

// start starts a real go-micro v4 server of this kind on 127.0.0.1,
// registered in reg; nothing global is used.
func (k kind) start(t testing.TB, id string, reg registry.Registry, brk broker.Broker, opts ...server.Option) *Greeter {
	t.Helper()
	srv := k.server(append([]server.Option{server.Name("greeter"), server.Id(id), server.Address("127.0.0.1:0"),
		server.Registry(reg), server.Broker(brk), server.RegisterTTL(time.Minute)}, opts...)...)
	g := &Greeter{id: id}
	if err := srv.Handle(srv.NewHandler(g)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return g
}

// startMicro starts a mucp server (see kind.start).
func startMicro(t testing.TB, id string, reg registry.Registry, brk broker.Broker, opts ...server.Option) *Greeter {
	t.Helper()
	return mucp.start(t, id, reg, brk, opts...)
}
