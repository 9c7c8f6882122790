package gomicro_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"

	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

func newMemory(t *testing.T) *health.Memory {
	t.Helper()
	mem, err := health.NewMemory(health.WithTick(20 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close() })
	return mem
}

func newRegistry(t *testing.T, reg health.Registry, opts ...health.RegistrarOption) *gomicro.Registry {
	t.Helper()
	r, err := gomicro.NewRegistry(reg, append([]health.RegistrarOption{health.WithDrain(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// listed returns the IDs of service's nodes in reg.
func listed(reg health.Registry, service string) []string {
	nodes, _ := reg.List(context.Background(), service)
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

// events reads a go-micro watcher's events into a channel until it stops.
func events(w registry.Watcher) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		for {
			r, err := w.Next()
			if err != nil {
				return
			}
			ch <- r.Action + " " + r.Service.Nodes[0].Id
		}
	}()
	return ch
}

// waitEvent waits for want among a watcher's events.
func waitEvent(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("the watch ended before %q", want)
			}
			if e == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %q event within 5 s", want)
		}
	}
}

// go-micro servers register in rpcguard's memory registry through the
// adapter; a go-micro client finds them through it; a server that stops
// leaves it, and watchers see create and delete events.
func TestRegistryAdapterForGoMicro(t *testing.T) {
	mem := newMemory(t)
	reg := newRegistry(t, mem)
	brk := broker.NewMemoryBroker()
	startMicro(t, "greeter-0", reg, brk)
	w, err := reg.Watch(registry.WatchService("greeter"))
	if err != nil {
		t.Fatal(err)
	}
	ch := events(w)
	defer func() {
		w.Stop()
		for range ch { // the reader ends with the watch
		}
	}()
	waitEvent(t, ch, "create greeter-greeter-0")
	stopper := server.NewServer(server.Name("greeter"), server.Id("greeter-1"), server.Address("127.0.0.1:0"),
		server.Registry(reg), server.Broker(brk), server.Transport(transport.NewHTTPTransport()), server.RegisterTTL(time.Minute))
	if err := stopper.Handle(stopper.NewHandler(&Greeter{id: "greeter-1"})); err != nil {
		t.Fatal(err)
	}
	if err := stopper.Start(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ch, "create greeter-greeter-1")
	if got := listed(mem, "greeter"); !slices.Equal(got, []string{"greeter-greeter-1", "greeter-greeter-0"}) { // newest first
		t.Fatalf("rpcguard's registry lists %v", got)
	}
	svcs, err := reg.GetService("greeter")
	if err != nil || len(svcs) != 1 || len(svcs[0].Nodes) != 2 {
		t.Fatalf("GetService: %v, %v; want one service with both nodes", svcs, err)
	}
	sel, err := gomicro.NewSelector(reg)
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Close()
	// No pooled connections: a stopped go-micro server keeps serving the
	// connections it has, which outlive the test.
	cli := client.NewClient(client.Selector(sel), client.Registry(reg), client.Broker(brk), client.PoolSize(0),
		client.Transport(transport.NewHTTPTransport()), client.ContentType("application/json"))
	call := func() error {
		_, err := hello(cli, "greeter", "x")
		return err
	}
	for range 10 {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	if err := stopper.Stop(); err != nil { // deregisters
		t.Fatal(err)
	}
	waitEvent(t, ch, "delete greeter-greeter-1")
	if got := listed(mem, "greeter"); !slices.Equal(got, []string{"greeter-greeter-0"}) {
		t.Fatalf("after greeter-1 stopped, rpcguard's registry lists %v", got)
	}
	if _, err := reg.ListServices(); err == nil {
		t.Error("ListServices answered: rpcguard's registries cannot list every service")
	}
	if _, err := reg.Watch(); err == nil {
		t.Error("a watch of every service was accepted")
	}
	// The selector follows the registry (its watch, a moment after ours):
	// then no call goes to the stopped server.
	testcluster.WaitFor(t, 5*time.Second, "the selector to drop greeter-1", func() bool {
		next, err := sel.Select("greeter")
		if err != nil {
			return false
		}
		for {
			n, err := next()
			if err != nil {
				return true
			}
			if n.Id == "greeter-greeter-1" {
				return false
			}
		}
	})
	for range 10 {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
}

// Bad input is refused with a clear error: a nil registry, bad Registrar
// options, and a go-micro TTL that the interval reaches.
func TestRegistryAdapterRefusesBadInput(t *testing.T) {
	mem := newMemory(t)
	if _, err := gomicro.NewRegistry(nil); err == nil {
		t.Error("NewRegistry(nil) accepted")
	}
	if _, err := gomicro.NewRegistry(mem, health.WithJitter(2)); err == nil {
		t.Error("a jitter of 200% accepted")
	}
	reg := newRegistry(t, mem, health.WithInterval(2*time.Second))
	err := reg.Register(&registry.Service{Name: "greeter", Nodes: []*registry.Node{{Id: "a", Address: "127.0.0.1:1"}}}, registry.RegisterTTL(time.Second))
	if err == nil {
		t.Fatal("a 1 s TTL renewed every 2 s was accepted")
	}
	t.Log(err)
	if err := reg.Register(nil); err == nil {
		t.Error("a nil service accepted")
	}
	err = reg.Register(&registry.Service{Name: "greeter", Nodes: []*registry.Node{{Id: "b", Address: "no port"}}}, registry.RegisterTTL(time.Minute))
	if err == nil {
		t.Error("a node without a port accepted")
	}
}

// crashable passes registry calls through until a node crashes: from then
// on that node's renewals and deregistration are lost, as when its process
// dies. It records when the node's last renewal reached the registry.
type crashable struct {
	health.Registry
	crashed     atomic.Pointer[string]
	mu          sync.Mutex
	lastRenewal map[string]time.Time
}

func (c *crashable) Register(ctx context.Context, service string, node selector.Node, ttl time.Duration) error {
	if id := c.crashed.Load(); id != nil && *id == node.ID {
		return errors.New("crashed")
	}
	err := c.Registry.Register(ctx, service, node, ttl)
	c.mu.Lock()
	c.lastRenewal[node.ID] = time.Now()
	c.mu.Unlock()
	return err
}

func (c *crashable) Deregister(ctx context.Context, service, id string) error {
	if crashed := c.crashed.Load(); crashed != nil && *crashed == id {
		return errors.New("crashed")
	}
	return c.Registry.Deregister(ctx, service, id)
}

// A go-micro server that crashes (stops renewing, never deregisters) under
// callers: with a 1 s TTL, no attempt is routed to it later than TTL + 1 s
// after its last renewal reached the registry, though the client's
// selector ejects nothing. (go-micro's default selector caches a service's
// nodes for a minute.)
func TestCrashedGoMicroNodeLeavesWithinTTL(t *testing.T) {
	const ttl = time.Second
	reg := &crashable{Registry: newMemory(t), lastRenewal: map[string]time.Time{}}
	mreg := newRegistry(t, reg)
	brk := broker.NewMemoryBroker()
	var servers []server.Server
	for _, id := range []string{"greeter-0", "greeter-1", "greeter-2"} {
		srv := server.NewServer(server.Name("greeter"), server.Id(id), server.Address("127.0.0.1:0"),
			server.Registry(mreg), server.Broker(brk), server.Transport(transport.NewHTTPTransport()), server.RegisterTTL(ttl))
		if err := srv.Handle(srv.NewHandler(&Greeter{id: id})); err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Stop() })
		servers = append(servers, srv)
	}
	crashed := "greeter-greeter-2"
	crashAt, last := crashRun(t, mreg, brk, crashed, ttl+1500*time.Millisecond, func() {
		reg.crashed.Store(&crashed)
		_ = servers[2].Stop() // its port closes; its deregistration is lost
	})
	reg.mu.Lock()
	renewed := reg.lastRenewal[crashed]
	reg.mu.Unlock()
	leftWithin(t, crashAt, renewed, last, ttl)
	if got := listed(reg, "greeter"); slices.Contains(got, crashed) {
		t.Fatalf("the registry still lists the crashed node: %v", got)
	}
}

// crashRun drives a client of reg's "greeter" fleet through a crash:
// round robin without ejection, so that only the registry can take the
// node out; 30 calls, then crash, then calls for runFor, none of which may
// fail. It returns when the crash came and when an attempt last went to
// nodeID.
func crashRun(t *testing.T, reg registry.Registry, brk broker.Broker, nodeID string, runFor time.Duration, crash func()) (crashAt, last time.Time) {
	t.Helper()
	sel, err := gomicro.NewSelector(reg, selector.WithStrategy(selector.RoundRobin))
	if err != nil {
		t.Fatal(err)
	}
	defer sel.Close()
	var mu sync.Mutex
	record := func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			if node.Id == nodeID {
				mu.Lock()
				last = time.Now()
				mu.Unlock()
			}
			return next(ctx, node, req, rsp, opts)
		}
	}
	policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithPerAttemptTimeout(time.Second), retry.WithBudget(retry.Budget{Off: true}))
	if err != nil {
		t.Fatal(err)
	}
	w, err := gomicro.NewClientWrapper(gomicro.WithRetry(policy), gomicro.WithBreaker(newBreaker(t)))
	if err != nil {
		t.Fatal(err)
	}
	// No pooled connections: a crashed process's connections die with it
	// (a stopped go-micro server keeps serving the ones it has).
	cli := mucp.client(client.Selector(sel), client.Registry(reg), client.Broker(brk), client.PoolSize(0),
		client.ContentType(mucp.contentType), client.Wrap(w), client.WrapCall(record))
	call := func() error {
		_, err := hello(cli, "greeter", "x")
		return err
	}
	for range 30 {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	crash()
	crashAt = time.Now()
	for time.Since(crashAt) < runFor {
		if err := call(); err != nil {
			t.Fatalf("a call failed after the crash: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return crashAt, last
}

// leftWithin fails t unless the crashed node got an attempt after its crash
// and none later than ttl + 1 s after its last renewal.
func leftWithin(t *testing.T, crashAt, renewed, last time.Time, ttl time.Duration) {
	t.Helper()
	if !last.After(crashAt) {
		t.Fatal("no attempt went to the crashed node after the crash: the test shows nothing")
	}
	late := last.Sub(renewed)
	if late > ttl+time.Second {
		t.Fatalf("an attempt reached the crashed node %v after its last renewal; want at most TTL + 1 s", late)
	}
	t.Logf("last attempt to the crashed node %v after its last renewal (TTL %v)", late.Round(time.Millisecond), ttl)
}

// A node whose check fails is deregistered once and stays out until the
// check passes (go-micro's own loop deregisters and registers it again in
// the same tick); go-micro's re-registrations do not bring it back.
func TestFailingCheckKeepsTheNodeOut(t *testing.T) {
	mem := newMemory(t)
	var failing atomic.Bool
	var registers, deregisters atomic.Int64
	reg := newRegistry(t, mem, health.WithInterval(30*time.Millisecond),
		health.WithCheck(func(context.Context) error {
			if failing.Load() {
				return errors.New("database unreachable")
			}
			return nil
		}, 0),
		health.WithRegistrarHooks(health.RegistrarHooks{
			OnRegister:   func() { registers.Add(1) },
			OnDeregister: func(error) { deregisters.Add(1) },
		}))
	startMicro(t, "greeter-0", reg, broker.NewMemoryBroker(), server.RegisterTTL(time.Second), server.RegisterInterval(20*time.Millisecond))
	if got := listed(mem, "greeter"); len(got) != 1 {
		t.Fatalf("registered: %v", got)
	}
	failing.Store(true)
	testcluster.WaitFor(t, 5*time.Second, "the node to leave", func() bool { return len(listed(mem, "greeter")) == 0 })
	// Out for 30 renewal intervals (and about 50 of go-micro's): never back.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if got := listed(mem, "greeter"); len(got) != 0 {
			t.Fatalf("the node came back while its check failed: %v", got)
		}
		time.Sleep(5 * time.Millisecond) // sampling, not waiting for an event
	}
	if r, d := registers.Load(), deregisters.Load(); r != 1 || d != 1 {
		t.Fatalf("%d registrations and %d deregistrations; want 1 and 1", r, d)
	}
	failing.Store(false)
	testcluster.WaitFor(t, 5*time.Second, "the node to come back", func() bool { return len(listed(mem, "greeter")) == 1 })
}

// Everything go-micro registers is kept (issue 25): go-micro's HTTP broker
// registers each subscription as a node at the broker's one address, and
// with two topics subscribed both receive every message; a server's
// endpoints and metadata come back from GetService as go-micro's memory
// registry gives them.
func TestRegistryKeepsWhatGoMicroRegisters(t *testing.T) {
	reg := newRegistry(t, newMemory(t))
	sub := broker.NewBroker(broker.Registry(reg), broker.Addrs("127.0.0.1:0"))
	pub := broker.NewBroker(broker.Registry(reg), broker.Addrs("127.0.0.1:0"))
	for _, b := range []broker.Broker{sub, pub} {
		if err := b.Connect(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Disconnect() })
	}
	var mu sync.Mutex
	got := map[string]int{}
	for _, topic := range []string{"user.login", "user.logout"} {
		s, err := sub.Subscribe(topic, func(e broker.Event) error {
			mu.Lock()
			got[e.Topic()]++
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Unsubscribe() })
	}
	for range 3 {
		for _, topic := range []string{"user.login", "user.logout"} {
			if err := pub.Publish(topic, &broker.Message{Header: map[string]string{"id": "1"}, Body: []byte("{}")}); err != nil {
				t.Fatalf("publish %s: %v", topic, err)
			}
		}
	}
	testcluster.WaitFor(t, 5*time.Second, "3 messages on each topic", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got["user.login"] == 3 && got["user.logout"] == 3
	})

	plain := registry.NewMemoryRegistry()
	for _, r := range []registry.Registry{reg, plain} {
		startMicro(t, "greeter-"+r.String(), r, broker.NewMemoryBroker(), server.Metadata(map[string]string{"zone": "a"}))
	}
	ours, err := reg.GetService("greeter")
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := plain.GetService("greeter")
	if err != nil {
		t.Fatal(err)
	}
	if len(ours) != 1 || len(theirs) != 1 || len(ours[0].Endpoints) == 0 || len(ours[0].Endpoints) != len(theirs[0].Endpoints) {
		t.Fatalf("endpoints: %v through rpcguard's registry, %v through go-micro's", ours, theirs)
	}
	if o, e := jsonOf(t, ours[0].Endpoints), jsonOf(t, theirs[0].Endpoints); o != e {
		t.Fatalf("endpoints %s, want go-micro's %s", o, e)
	}
	ourMD, theirMD := maps.Clone(ours[0].Nodes[0].Metadata), maps.Clone(theirs[0].Nodes[0].Metadata)
	delete(ourMD, "registry") // each names its registry
	delete(theirMD, "registry")
	if ourMD["zone"] != "a" || !maps.Equal(ourMD, theirMD) {
		t.Fatalf("node metadata %v, want go-micro's %v", ourMD, theirMD)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
