// Package microrows plays the fault demo's scenarios on go-micro v4
// services (mucp over go-micro's HTTP transport, its memory registry),
// called by go-micro's own client as the seeds configured it (its selector,
// Retries(3)) and by go-micro with rpcguard (gomicro: its selector and
// client wrapper, with the demo's rpcguard client's settings). The v5
// package beside it is generated from this one (go generate ./gomicro/v5).
package microrows

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/opentracing/opentracing-go"
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

// The clients: go-micro's own, and go-micro with rpcguard.
const (
	Plain   = "go-micro"
	Guarded = "gomicro"
)

// Scenario is one fault on a fresh fleet of "echo".
type Scenario struct {
	Name  string
	Rules []faultinject.Rule // on the servers, for the whole run
	Nodes int                // the fleet's size (default 3)
	Dead  []int              // nodes registered at a port that refuses
	// Crash: a third into the run, node-1 freezes (it takes calls and
	// never answers) and stops renewing, without deregistering.
	Crash bool
}

// Run is how a scenario is played: the demo's TTL, interval and tracer,
// and its driver, which makes the calls (and crashes node-1 when asked).
type Run struct {
	Calls         int
	TTL, Interval time.Duration
	Tracer        opentracing.Tracer
	Drive         func(call func(ctx context.Context) error, crash func()) (ok int64, latencies []time.Duration, crashedAt time.Time)
}

// Outcome is what a run measured.
type Outcome struct {
	OK        int64
	Latencies []time.Duration
	Attempts  int64     // attempts that reached a server
	Breaker   string    // the gomicro client's circuit: closed, open, or - for go-micro's own
	CrashedAt time.Time // Crash only
	LastCall  time.Time // Crash only: when a call last reached node-1 after its crash
}

// Quiet silences go-micro's logger (it logs every registration, and an
// error for every connection a cancelled attempt closes) and replaces its
// global defaults, which reach the network (the default registry
// multicasts): everything here is given its own anyway.
func Quiet() {
	logger.DefaultLogger = logger.NewLogger(logger.WithLevel(logger.FatalLevel))
	registry.DefaultRegistry = registry.NewMemoryRegistry()
	mselector.DefaultSelector = mselector.NewSelector(mselector.Registry(registry.DefaultRegistry))
	broker.DefaultBroker = broker.NewMemoryBroker()
}

// Msg is the echo's request and answer, as JSON.
type Msg struct{ From string }

// Echo answers with its node's ID.
type Echo struct{ id string }

// Unary is the echo's one method.
func (e *Echo) Unary(_ context.Context, _ *Msg, rsp *Msg) error {
	rsp.From = e.id
	return nil
}

// fleet is a fresh go-micro fleet of "echo", registered with the run's TTL
// and interval.
type fleet struct {
	received atomic.Int64 // attempts that reached a server, faulted or not
	reg      registry.Registry
	bus      broker.Broker
	tr       transport.Transport
	inj      *faultinject.Injector
	servers  []server.Server
	crashed  atomic.Bool  // node-1 froze and stopped renewing
	lastCall atomic.Int64 // when a call last reached node-1 after its crash
}

func start(sc Scenario, r Run) (*fleet, error) {
	inj, err := faultinject.New(1, nil)
	if err != nil {
		return nil, err
	}
	f := &fleet{reg: registry.NewMemoryRegistry(), bus: broker.NewMemoryBroker(), tr: transport.NewHTTPTransport(), inj: inj}
	size := sc.Nodes
	if size == 0 {
		size = 3
	}
	for i := range size {
		id := fmt.Sprintf("node-%d", i)
		if slices.Contains(sc.Dead, i) { // killed, still registered: a port that refuses
			addr, err := deadAddr()
			if err != nil {
				f.stop()
				return nil, err
			}
			if err := f.reg.Register(&registry.Service{Name: "echo", Nodes: []*registry.Node{{Id: id, Address: addr}}}); err != nil {
				f.stop()
				return nil, err
			}
			continue
		}
		var reg registry.Registry = f.reg
		if i == 1 {
			reg = &crashing{Registry: f.reg, crashed: &f.crashed}
		}
		srv := server.NewServer(server.Name("echo"), server.Id(fmt.Sprint(i)), server.Address("127.0.0.1:0"),
			server.Registry(reg), server.Broker(f.bus), server.Transport(f.tr),
			server.RegisterTTL(r.TTL), server.RegisterInterval(r.Interval), server.WrapHandler(f.faults(id)))
		if err := srv.Handle(srv.NewHandler(&Echo{id: id})); err != nil {
			f.stop()
			return nil, err
		}
		if err := srv.Start(); err != nil {
			f.stop()
			return nil, err
		}
		f.servers = append(f.servers, srv)
	}
	return f, nil
}

// faults counts the calls that reach node id, then applies its faults (and
// its freeze after a crash).
func (f *fleet) faults(id string) server.HandlerWrapper {
	return func(h server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			f.received.Add(1)
			if id == "node-1" && f.crashed.Load() {
				f.lastCall.Store(time.Now().UnixNano())
				<-ctx.Done()
				return gomicro.ToMicro("echo", ctx.Err())
			}
			if err := f.inj.Apply(ctx, "", req.Endpoint(), id, ""); err != nil {
				return gomicro.ToMicro("echo", err)
			}
			return h(ctx, req, rsp)
		}
	}
}

func (f *fleet) stop() {
	f.crashed.Store(false) // node-1's server may deregister now
	for _, s := range f.servers {
		_ = s.Stop()
	}
}

// crashing loses node-1's renewals and deregistration once it has crashed,
// as a dead process would.
type crashing struct {
	registry.Registry
	crashed *atomic.Bool
}

func (c *crashing) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	if c.crashed.Load() {
		return nil
	}
	return c.Registry.Register(s, opts...)
}

func (c *crashing) Deregister(s *registry.Service, opts ...registry.DeregisterOption) error {
	if c.crashed.Load() {
		return nil
	}
	return c.Registry.Deregister(s, opts...)
}

// newClient builds the client under test; close releases it.
func newClient(sc Scenario, name string, r Run, f *fleet) (client.Client, *breaker.Breaker, func(), error) {
	if name == Plain {
		sel := mselector.NewSelector(mselector.Registry(f.reg))
		cli := client.NewClient(client.Selector(sel), client.Registry(f.reg), client.Broker(f.bus), client.Transport(f.tr),
			client.ContentType("application/json"), client.Retries(3))
		return cli, nil, func() { _ = sel.Close() }, nil
	}
	tg, err := tracing.New(tracing.WithTracer(r.Tracer))
	if err != nil {
		return nil, nil, nil, err
	}
	brk, err := breaker.New(breaker.WithNamespace(fmt.Sprintf("faultdemo-micro-%s-%d", sc.Name, r.Calls)),
		breaker.WithSettings(breaker.Settings{VolumeThreshold: max(5, min(20, r.Calls/10)), SleepWindow: time.Second}))
	if err != nil {
		return nil, nil, nil, err
	}
	policy, err := retry.New(retry.WithIdempotent("Echo.*"), retry.WithMaxAttempts(3),
		retry.WithPerAttemptTimeout(150*time.Millisecond), retry.WithHedging(40*time.Millisecond, "Echo.Unary"))
	if err != nil {
		return nil, nil, nil, err
	}
	sel, err := gomicro.NewSelector(f.reg)
	if err != nil {
		return nil, nil, nil, err
	}
	w, err := gomicro.NewClientWrapper(gomicro.WithTracing(tg), gomicro.WithBreaker(brk), gomicro.WithRetry(policy))
	if err != nil {
		return nil, nil, nil, err
	}
	cli := client.NewClient(client.Selector(sel), client.Registry(f.reg), client.Broker(f.bus), client.Transport(f.tr),
		client.ContentType("application/json"), client.Wrap(w))
	return cli, brk, func() { _ = sel.Close() }, nil
}

// Play plays one scenario with one client (Plain or Guarded) on a fresh
// fleet.
func Play(sc Scenario, name string, r Run) (Outcome, error) {
	f, err := start(sc, r)
	if err != nil {
		return Outcome{}, err
	}
	defer f.stop()
	cli, brk, closeClient, err := newClient(sc, name, r, f)
	if err != nil {
		return Outcome{}, err
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
	if err := f.inj.SetRules(sc.Rules...); err != nil {
		return Outcome{}, err
	}
	base := f.received.Load()
	var o Outcome
	o.OK, o.Latencies, o.CrashedAt = r.Drive(call, func() { f.crashed.Store(true) })
	o.Attempts = f.received.Load() - base
	o.Breaker = "-"
	if brk != nil {
		o.Breaker = "closed"
		if brk.IsOpen("echo Echo.Unary") {
			o.Breaker = "open"
		}
	}
	if n := f.lastCall.Load(); n > 0 {
		o.LastCall = time.Unix(0, n)
	}
	return o, nil
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
