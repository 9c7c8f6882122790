package gomicro_test

// Written by hand (not generated from package gomicro): go-micro v5's etcd
// registry is its core one, which keeps a registration alive with one
// long-lived etcd KeepAlive instead of renewals.

import (
	"context"
	"net/url"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"go-micro.dev/v5/client"
	"go-micro.dev/v5/registry"
	microetcd "go-micro.dev/v5/registry/etcd"
	"go-micro.dev/v5/server"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rpcguard/rpcguard/faultinject"
	"github.com/rpcguard/rpcguard/gomicro/v5"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/health/etcd"
	"github.com/rpcguard/rpcguard/health/etcd/etcdtest"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
)

// startEtcd starts a real embedded etcd; it returns its host:port.
func startEtcd(t *testing.T) string {
	t.Helper()
	srv, err := etcdtest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	u, err := url.Parse(srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// etcdRegistry is go-micro v5's core etcd registry on addr.
func etcdRegistry(t *testing.T, addr string) registry.Registry {
	t.Helper()
	reg := microetcd.NewEtcdRegistry(registry.Addrs(addr), registry.Timeout(2*time.Second))
	// The registry has no Close, and its etcd client would outlive the
	// test: close it through its unexported field (test-only).
	f := reflect.ValueOf(reg).Elem().FieldByName("client")
	cli := *(**clientv3.Client)(unsafe.Pointer(f.UnsafeAddr()))
	t.Cleanup(func() { _ = cli.Close() })
	return reg
}

// frozen passes a go-micro registry's calls through until its process
// freezes: from then on its registration loop does nothing.
type frozen struct {
	registry.Registry
	is atomic.Bool
}

func (f *frozen) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	if f.is.Load() {
		return nil
	}
	return f.Registry.Register(s, opts...)
}

func (f *frozen) Deregister(s *registry.Service, opts ...registry.DeregisterOption) error {
	if f.is.Load() {
		return nil
	}
	return f.Registry.Deregister(s, opts...)
}

// On go-micro v5's etcd registry, with a dead node registered, every call
// succeeds. A process that freezes (its handlers hang, its registration
// loop stops) stays registered past its 1 s TTL: the registry's KeepAlive
// still runs in the live process. rpcguard's client routes around it all
// the same (a per-attempt timeout, then ejection).
func TestGoMicroV5OnItsEtcdRegistry(t *testing.T) {
	addr := startEtcd(t)
	reg := etcdRegistry(t, addr)
	brk := newMicroBroker()
	inj := newInjector(t)
	freezing := &frozen{Registry: reg}
	const ttl = time.Second
	for i, id := range []string{"greeter-0", "greeter-1", "greeter-2"} {
		var r registry.Registry = reg
		if i == 2 {
			r = freezing
		}
		hw, err := gomicro.NewHandlerWrapper(gomicro.WithBreaker(newBreaker(t)), gomicro.WithFaults(inj, "greeter-greeter-"+id[len(id)-1:]))
		if err != nil {
			t.Fatal(err)
		}
		// The grpc transport: go-micro's mucp client races with itself
		// (its reader against stream.Close) when an attempt times out, as
		// every attempt to the frozen node does, and -race reports it.
		grpcKind.start(t, id, r, brk, server.RegisterTTL(ttl), server.RegisterInterval(ttl/4), server.WrapHandler(hw))
	}
	dead := &registry.Node{Id: "greeter-dead", Address: testcluster.DeadAddr(t)}
	if err := reg.Register(&registry.Service{Name: "greeter", Nodes: []*registry.Node{dead}}, registry.RegisterTTL(time.Minute)); err != nil {
		t.Fatal(err)
	}
	policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithPerAttemptTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{k: grpcKind, reg: reg, brk: brk}
	f.cli = f.client(t, []gomicro.Option{gomicro.WithRetry(policy)})
	for i := range 300 {
		if _, err := f.call("x"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}

	freezing.is.Store(true)
	if err := inj.SetRules(faultinject.Rule{Name: "frozen", Node: "greeter-greeter-2", Rate: 1, Hang: true}); err != nil {
		t.Fatal(err)
	}
	frozeAt := time.Now()
	for time.Since(frozeAt) < ttl+2*time.Second {
		rsp, err := f.call("x")
		if err != nil {
			t.Fatalf("a call failed after the freeze: %v", err)
		}
		if rsp.From == "greeter-2" {
			t.Fatal("the frozen node answered")
		}
	}
	if !slices.Contains(nodeIDs(t, reg), "greeter-greeter-2") {
		t.Fatal("the frozen node left go-micro v5's etcd registry: its KeepAlive no longer keeps it, update the docs")
	}
}

// With gomicro.NewRegistry over rpcguard's etcd registry instead, the
// Registrar's check takes a frozen node out: the check calls the node
// itself, fails, and the node is deregistered once (and would expire with
// its TTL if the process died).
func TestFrozenNodeLeavesThroughTheRegistrarsCheck(t *testing.T) {
	addr := startEtcd(t)
	cli, err := clientv3.New(etcd.ClientConfig("http://" + addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ereg, err := etcd.New(cli)
	if err != nil {
		t.Fatal(err)
	}
	inj := newInjector(t)
	hw, err := gomicro.NewHandlerWrapper(gomicro.WithBreaker(newBreaker(t)), gomicro.WithFaults(inj, "greeter-greeter-0"))
	if err != nil {
		t.Fatal(err)
	}
	var self atomic.Pointer[string] // the node's address, once it listens
	// The grpc transport, as in TestGoMicroV5OnItsEtcdRegistry.
	probe := grpcKind.client(client.ContentType(grpcKind.contentType), client.PoolSize(0))
	check := func(ctx context.Context) error {
		a := self.Load()
		if a == nil {
			return nil
		}
		var rsp Rsp
		// go-micro bounds an attempt by its ConnectionTimeout, never by
		// the context, and sends it to the server as its deadline.
		return probe.Call(ctx, probe.NewRequest("greeter", "Greeter.Hello", &Req{Name: "probe"}), &rsp,
			client.WithAddress(*a), client.WithRetries(0), client.WithConnectionTimeout(200*time.Millisecond))
	}
	reg := newRegistry(t, ereg, health.WithInterval(100*time.Millisecond), health.WithCheck(check, 200*time.Millisecond))
	srv := grpcKind.server(server.Name("greeter"), server.Id("greeter-0"), server.Address("127.0.0.1:0"),
		server.Registry(reg), server.Broker(newMicroBroker()), server.RegisterTTL(2*time.Second), server.WrapHandler(hw))
	if err := srv.Handle(srv.NewHandler(&Greeter{id: "greeter-0"})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	a := srv.Options().Address
	self.Store(&a)
	testcluster.WaitFor(t, 5*time.Second, "the node to register", func() bool { return len(listed(ereg, "greeter")) == 1 })
	if err := inj.SetRules(faultinject.Rule{Name: "frozen", Rate: 1, Hang: true}); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 5*time.Second, "the frozen node to leave", func() bool { return len(listed(ereg, "greeter")) == 0 })
	if err := inj.SetRules(); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 5*time.Second, "the thawed node to come back", func() bool { return len(listed(ereg, "greeter")) == 1 })
}

// nodeIDs lists the service's node IDs in a go-micro registry.
func nodeIDs(t *testing.T, reg registry.Registry) []string {
	t.Helper()
	svcs, err := reg.GetService("greeter")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range svcs {
		for _, n := range s.Nodes {
			ids = append(ids, n.Id)
		}
	}
	return ids
}

// etcdPluginRegistry is go-micro v5's core etcd registry on a real embedded
// etcd of its own, for the tests generated from v4's, which use the
// registry/etcd plugin.
func etcdPluginRegistry(t *testing.T) registry.Registry { return etcdRegistry(t, startEtcd(t)) }
