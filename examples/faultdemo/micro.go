package main

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	mselector "go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/faultinject"
	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/tracing"
)

// The go-micro rows: the same scenarios on go-micro v4 services (mucp over
// its HTTP transport, go-micro's memory registry), called by go-micro's own
// client as the seeds configured it (its selector, Retries(3)) and by
// go-micro with rpcguard (gomicro: its selector and client wrapper, with the
// rpcguard client's settings).
const (
	clientMicro   = "go-micro"
	clientGoMicro = "gomicro"
)

// quietMicro silences go-micro's logger (it logs every registration, and
// an error for every connection a cancelled attempt closes) and replaces
// its global defaults, which reach the network (the default registry
// multicasts): everything here is given its own anyway.
func quietMicro() {
	logger.DefaultLogger = logger.NewLogger(logger.WithLevel(logger.FatalLevel))
	registry.DefaultRegistry = registry.NewMemoryRegistry()
	mselector.DefaultSelector = mselector.NewSelector(mselector.Registry(registry.DefaultRegistry))
	broker.DefaultBroker = broker.NewMemoryBroker()
}

// onMicro reports whether a scenario has go-micro rows: the overload and
// recovery rows measure the gRPC selector's learning and stay gRPC's.
func (sc scenario) onMicro() bool { return sc.capacity == 0 && !sc.recovers }

// Msg is the go-micro echo's request and answer, as JSON.
type Msg struct{ From string }

// Echo answers with its node's ID.
type Echo struct{ id string }

// Unary is the echo's one method.
func (e *Echo) Unary(_ context.Context, _ *Msg, rsp *Msg) error {
	rsp.From = e.id
	return nil
}

// microCluster is a fresh go-micro fleet of "echo", registered with the
// demo's TTL and interval.
type microCluster struct {
	received atomic.Int64 // attempts that reached a server, faulted or not
	reg      registry.Registry
	bus      broker.Broker
	tr       transport.Transport
	inj      *faultinject.Injector
	servers  []server.Server
	crashed  atomic.Bool  // node-1 froze and stopped renewing
	lastCall atomic.Int64 // when a call last reached node-1 after its crash
}

func startMicroCluster(size int, dead []int) (*microCluster, error) {
	inj, err := faultinject.New(1, nil)
	if err != nil {
		return nil, err
	}
	c := &microCluster{reg: registry.NewMemoryRegistry(), bus: broker.NewMemoryBroker(), tr: transport.NewHTTPTransport(), inj: inj}
	for i := range size {
		id := fmt.Sprintf("node-%d", i)
		if isIn(dead, i) { // killed, still registered: a port that refuses
			addr, err := deadAddr()
			if err != nil {
				c.stop()
				return nil, err
			}
			if err := c.reg.Register(&registry.Service{Name: "echo", Nodes: []*registry.Node{{Id: id, Address: addr}}}); err != nil {
				c.stop()
				return nil, err
			}
			continue
		}
		var reg registry.Registry = c.reg
		if i == 1 {
			reg = &crashingRegistry{Registry: c.reg, crashed: &c.crashed}
		}
		srv := server.NewServer(server.Name("echo"), server.Id(fmt.Sprint(i)), server.Address("127.0.0.1:0"),
			server.Registry(reg), server.Broker(c.bus), server.Transport(c.tr),
			server.RegisterTTL(ttl), server.RegisterInterval(interval), server.WrapHandler(c.faults(id)))
		if err := srv.Handle(srv.NewHandler(&Echo{id: id})); err != nil {
			c.stop()
			return nil, err
		}
		if err := srv.Start(); err != nil {
			c.stop()
			return nil, err
		}
		c.servers = append(c.servers, srv)
	}
	return c, nil
}

// faults counts the calls that reach node id, then applies its faults (and
// its freeze after a crash).
func (c *microCluster) faults(id string) server.HandlerWrapper {
	return func(h server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			c.received.Add(1)
			if id == "node-1" && c.crashed.Load() {
				c.lastCall.Store(time.Now().UnixNano())
				<-ctx.Done()
				return gomicro.ToMicro("echo", ctx.Err())
			}
			if err := c.inj.Apply(ctx, "", req.Endpoint(), id, ""); err != nil {
				return gomicro.ToMicro("echo", err)
			}
			return h(ctx, req, rsp)
		}
	}
}

func (c *microCluster) stop() {
	c.crashed.Store(false) // node-1's server may deregister now
	for _, s := range c.servers {
		_ = s.Stop()
	}
}

// crashingRegistry loses node-1's renewals and deregistration once it has
// crashed, as a dead process would.
type crashingRegistry struct {
	registry.Registry
	crashed *atomic.Bool
}

func (r *crashingRegistry) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	if r.crashed.Load() {
		return nil
	}
	return r.Registry.Register(s, opts...)
}

func (r *crashingRegistry) Deregister(s *registry.Service, opts ...registry.DeregisterOption) error {
	if r.crashed.Load() {
		return nil
	}
	return r.Registry.Deregister(s, opts...)
}

// microClient builds the go-micro client under test; close releases it.
func (e *env) microClient(sc scenario, name string, calls int, c *microCluster) (client.Client, *breaker.Breaker, func(), error) {
	if name == clientMicro {
		sel := mselector.NewSelector(mselector.Registry(c.reg))
		cli := client.NewClient(client.Selector(sel), client.Registry(c.reg), client.Broker(c.bus), client.Transport(c.tr),
			client.ContentType("application/json"), client.Retries(3))
		return cli, nil, func() { _ = sel.Close() }, nil
	}
	tg, err := tracing.New(tracing.WithTracer(e.tracer))
	if err != nil {
		return nil, nil, nil, err
	}
	brk, err := breaker.New(breaker.WithNamespace(fmt.Sprintf("faultdemo-micro-%s-%d", sc.name, calls)),
		breaker.WithSettings(breaker.Settings{VolumeThreshold: max(5, min(20, calls/10)), SleepWindow: time.Second}))
	if err != nil {
		return nil, nil, nil, err
	}
	policy, err := retry.New(retry.WithIdempotent("Echo.*"), retry.WithMaxAttempts(3),
		retry.WithPerAttemptTimeout(150*time.Millisecond), retry.WithHedging(40*time.Millisecond, "Echo.Unary"))
	if err != nil {
		return nil, nil, nil, err
	}
	sel, err := gomicro.NewSelector(c.reg)
	if err != nil {
		return nil, nil, nil, err
	}
	w, err := gomicro.NewClientWrapper(gomicro.WithTracing(tg), gomicro.WithBreaker(brk), gomicro.WithRetry(policy))
	if err != nil {
		return nil, nil, nil, err
	}
	cli := client.NewClient(client.Selector(sel), client.Registry(c.reg), client.Broker(c.bus), client.Transport(c.tr),
		client.ContentType("application/json"), client.Wrap(w))
	return cli, brk, func() { _ = sel.Close() }, nil
}

// runMicro plays one scenario with a go-micro client on a fresh fleet.
func (e *env) runMicro(sc scenario, name string, calls int) (result, error) {
	size := sc.nodes
	if size == 0 {
		size = 3
	}
	c, err := startMicroCluster(size, sc.dead)
	if err != nil {
		return result{}, err
	}
	defer c.stop()
	cli, brk, closeClient, err := e.microClient(sc, name, calls, c)
	if err != nil {
		return result{}, err
	}
	defer closeClient()
	call := func(ctx context.Context) error {
		var rsp Msg
		return cli.Call(ctx, cli.NewRequest("echo", "Echo.Unary", &Msg{}), &rsp)
	}
	for range 30 { // warm up: connections to every live node
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = call(ctx)
		cancel()
	}
	if err := c.inj.SetRules(sc.rules...); err != nil {
		return result{}, err
	}
	base := c.received.Load()
	ok, latencies, crashedAt := drive(sc, calls, concurrent, call, func() { c.crashed.Store(true) })
	r := result{Scenario: sc.name, Client: name, Calls: calls,
		SuccessPct:      100 * float64(ok) / float64(calls),
		AttemptsPerCall: float64(c.received.Load()-base) / float64(calls), Breaker: "-"}
	r.P50MS, r.P99MS = percentiles(latencies)
	if brk != nil {
		r.Breaker = "closed"
		if brk.IsOpen("echo Echo.Unary") {
			r.Breaker = "open"
		}
	}
	r.crashNote(sc, crashedAt, &c.lastCall)
	return r, nil
}

func isIn(list []int, i int) bool {
	for _, x := range list {
		if x == i {
			return true
		}
	}
	return false
}

// deadAddr is a loopback address whose port refuses connections.
func deadAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
