package health_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/health/etcd"
	"github.com/rpcguard/rpcguard/health/etcd/etcdtest"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/selector"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend is a registry under test with the timings that suit it: etcd
// leases count whole seconds.
type backend struct {
	name          string
	reg           health.Registry
	ttl, interval time.Duration
	etcd          *etcdtest.Server // nil for memory
}

func memoryBackend(t *testing.T) backend {
	m, err := health.NewMemory(health.WithTick(20 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return backend{name: "memory", reg: m, ttl: time.Second, interval: 250 * time.Millisecond}
}

func etcdBackend(t *testing.T, hooks etcd.Hooks, opts ...etcd.Option) backend {
	srv, err := etcdtest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	cli, err := clientv3.New(etcd.ClientConfig(srv.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	reg, err := etcd.New(cli, append([]etcd.Option{etcd.WithHooks(hooks)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return backend{name: "etcd", reg: reg, ttl: 2 * time.Second, interval: 500 * time.Millisecond, etcd: srv}
}

func backends(t *testing.T, run func(t *testing.T, b backend)) {
	t.Run("memory", func(t *testing.T) { run(t, memoryBackend(t)) })
	t.Run("etcd", func(t *testing.T) { run(t, etcdBackend(t, etcd.Hooks{})) })
}

// heartbeats records, per node, when its last registration succeeded.
type heartbeats struct {
	health.Registry
	last sync.Map // node ID -> time.Time
}

func (h *heartbeats) Register(ctx context.Context, service string, n selector.Node, ttl time.Duration) error {
	err := h.Registry.Register(ctx, service, n, ttl)
	if err == nil {
		h.last.Store(n.ID, time.Now())
	}
	return err
}

func (h *heartbeats) lastOf(id string) time.Time {
	v, _ := h.last.Load(id)
	t, _ := v.(time.Time)
	return t
}

// cluster starts n nodes, each with a registrar on reg.
func startRegistered(t *testing.T, b backend, reg health.Registry, n int, opts ...health.RegistrarOption) (*testcluster.Cluster, []*health.Registrar) {
	t.Helper()
	c := testcluster.Start(t, n)
	var rs []*health.Registrar
	for _, node := range c.Nodes {
		r, err := health.NewRegistrar(reg, "echo", selector.Node{ID: node.ID, Addr: node.Addr},
			append([]health.RegistrarOption{health.WithTTL(b.ttl), health.WithInterval(b.interval), health.WithDrain(0)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Halt)
		rs = append(rs, r)
	}
	return c, rs
}

func dialService(t *testing.T, reg health.Registry) *grpc.ClientConn {
	return testcluster.Dial(t, "rpcguard:///echo", testcluster.Resolver(t, reg),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"rpcguard_selector":{"strategy":"round_robin"}}]}`))
}

func listed(t *testing.T, reg health.Registry) []string {
	nodes, err := reg.List(context.Background(), "echo")
	if err != nil {
		return nil
	}
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

func TestCrashedNodeDisappearsWithinTTL(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		hb := &heartbeats{Registry: b.reg}
		c, rs := startRegistered(t, b, hb, 3)
		cc := dialService(t, hb)
		crashed := c.Nodes[1]
		var lastCall atomic.Int64
		crashed.SetFault(func(context.Context, string) error { lastCall.Store(time.Now().UnixNano()); return nil })
		testcluster.WaitFor(t, 10*time.Second, "calls on every node", func() bool {
			_, _ = echo.Unary(context.Background(), cc, grpc.WaitForReady(true))
			return c.Nodes[0].Calls() > 0 && crashed.Calls() > 0 && c.Nodes[2].Calls() > 0
		})
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // a client calling all along
			defer wg.Done()
			for ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, _ = echo.Unary(cctx, cc)
				cancel()
			}
		}()
		rs[1].Halt() // the crash: no more heartbeats, no deregistration
		last := hb.lastOf(crashed.ID)
		deadline := last.Add(b.ttl + time.Second)
		testcluster.WaitFor(t, time.Until(deadline), "the crashed node to leave the registry within TTL + 1 s", func() bool {
			return len(listed(t, b.reg)) == 2
		})
		gone := time.Now()
		// The client stops sending to it: no call arrives once the
		// registry update has reached the client.
		testcluster.WaitFor(t, 5*time.Second, "calls to stop reaching the crashed node", func() bool {
			before := crashed.Calls()
			for range 20 {
				_, _ = echo.Unary(context.Background(), cc)
			}
			return crashed.Calls() == before
		})
		stop()
		wg.Wait()
		t.Logf("%s (TTL %v, interval %v): gone from the registry %v after the last heartbeat; last call routed to it %v after the last heartbeat",
			b.name, b.ttl, b.interval, gone.Sub(last).Round(time.Millisecond), time.Unix(0, lastCall.Load()).Sub(last).Round(time.Millisecond))
	})
}

func TestGracefulStopLosesNoCall(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		c, rs := startRegistered(t, b, b.reg, 3)
		cc := dialService(t, b.reg)
		testcluster.WaitFor(t, 10*time.Second, "calls on every node", func() bool {
			_, _ = echo.Unary(context.Background(), cc, grpc.WaitForReady(true))
			return c.Nodes[0].Calls() > 0 && c.Nodes[1].Calls() > 0 && c.Nodes[2].Calls() > 0
		})
		ctx, stop := context.WithCancel(context.Background())
		var failed, calls atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					if _, err := echo.Unary(context.Background(), cc); err != nil {
						failed.Add(1)
						t.Logf("failed call: %v", err)
					}
					calls.Add(1)
				}
			}()
		}
		testcluster.WaitFor(t, 5*time.Second, "calls under way", func() bool { return calls.Load() > 200 })
		leaving := c.Nodes[0]
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// The graceful sequence: deregister and drain, then stop accepting.
		if err := rs[0].Stop(stopCtx); err != nil {
			t.Fatal(err)
		}
		testcluster.WaitFor(t, 5*time.Second, "the client to drop the leaving node", func() bool {
			before := leaving.Calls()
			for range 20 {
				_, _ = echo.Unary(context.Background(), cc)
			}
			return leaving.Calls() == before
		})
		leaving.Stop()
		target := calls.Load() + 500
		testcluster.WaitFor(t, 10*time.Second, "500 more calls", func() bool { return calls.Load() >= target })
		stop()
		wg.Wait()
		if failed.Load() != 0 {
			t.Fatalf("%d of %d calls failed through a graceful stop", failed.Load(), calls.Load())
		}
	})
}

func TestFailingCheckDeregistersOnceAndRecovers(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		var sick atomic.Bool
		var deregs, regs, checks atomic.Int64
		node := testcluster.Start(t, 1).Nodes[0]
		r, err := health.NewRegistrar(b.reg, "echo", selector.Node{ID: node.ID, Addr: node.Addr},
			health.WithTTL(b.ttl), health.WithInterval(b.interval/5), health.WithDrain(0),
			health.WithCheck(func(context.Context) error {
				checks.Add(1)
				if sick.Load() {
					return errors.New("database unreachable")
				}
				return nil
			}, time.Second),
			health.WithRegistrarHooks(health.RegistrarHooks{OnRegister: func() { regs.Add(1) }, OnDeregister: func(error) { deregs.Add(1) }}))
		if err != nil {
			t.Fatal(err)
		}
		// The registrar's grpc.health.v1 server on a real gRPC server.
		hsrv, err := echo.Start("health")
		if err != nil {
			t.Fatal(err)
		}
		defer hsrv.Kill()
		hsrv.RegisterHealth(r.HealthServer())
		hc := healthpb.NewHealthClient(testcluster.Dial(t, "passthrough:///"+hsrv.Addr))
		status := func() healthpb.HealthCheckResponse_ServingStatus {
			resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "echo"})
			if err != nil {
				return healthpb.HealthCheckResponse_UNKNOWN
			}
			return resp.Status
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer r.Halt()
		if status() != healthpb.HealthCheckResponse_SERVING || len(listed(t, b.reg)) != 1 {
			t.Fatalf("after Start: %v, listed %v", status(), listed(t, b.reg))
		}
		sick.Store(true)
		testcluster.WaitFor(t, 5*time.Second, "deregistration and NOT_SERVING", func() bool {
			return len(listed(t, b.reg)) == 0 && status() == healthpb.HealthCheckResponse_NOT_SERVING
		})
		ticks, seen := regs.Load(), checks.Load()
		testcluster.WaitFor(t, 5*time.Second, "five more failing checks", func() bool { return checks.Load() >= seen+5 })
		if deregs.Load() != 1 || regs.Load() != ticks || len(listed(t, b.reg)) != 0 {
			t.Fatalf("while sick: %d deregistrations, %d registrations (was %d): want 1 and no flapping", deregs.Load(), regs.Load(), ticks)
		}
		sick.Store(false)
		testcluster.WaitFor(t, 5*time.Second, "registration again and SERVING", func() bool {
			return len(listed(t, b.reg)) == 1 && status() == healthpb.HealthCheckResponse_SERVING
		})
	})
}

func TestEtcdRestart(t *testing.T) {
	var watchErrs atomic.Int64
	b := etcdBackend(t, etcd.Hooks{OnWatchError: func(string, error) { watchErrs.Add(1) }})
	hb := &heartbeats{Registry: b.reg}
	var regErrs atomic.Int64
	c, _ := startRegistered(t, b, hb, 2, health.WithRegistrarHooks(health.RegistrarHooks{OnError: func(error) { regErrs.Add(1) }}))
	cc := dialService(t, b.reg)
	testcluster.WaitFor(t, 10*time.Second, "calls on both nodes", func() bool {
		_, _ = echo.Unary(context.Background(), cc, grpc.WaitForReady(true))
		return c.Nodes[0].Calls() > 0 && c.Nodes[1].Calls() > 0
	})
	b.etcd.Stop()
	testcluster.WaitFor(t, 10*time.Second, "the registrars to notice etcd is down", func() bool { return regErrs.Load() > 0 })
	if err := b.etcd.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// One interval, plus up to a second for the etcd client to reconnect
	// (EtcdClientConfig).
	testcluster.WaitFor(t, b.interval+time.Second, "both nodes renewed after etcd is back", func() bool {
		return hb.lastOf(c.Nodes[0].ID).After(back) && hb.lastOf(c.Nodes[1].ID).After(back) && len(listed(t, b.reg)) == 2
	})
	t.Logf("renewed %v and %v after etcd came back (interval %v)",
		hb.lastOf(c.Nodes[0].ID).Sub(back).Round(time.Millisecond), hb.lastOf(c.Nodes[1].ID).Sub(back).Round(time.Millisecond), b.interval)
	// The watching client was not restarted: a node that registers now
	// reaches it.
	late, err := echo.Start("node-late")
	if err != nil {
		t.Fatal(err)
	}
	defer late.Kill()
	if err := b.reg.Register(context.Background(), "echo", selector.Node{ID: late.ID, Addr: late.Addr}, b.ttl); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 10*time.Second, "the watching client to send to the new node", func() bool {
		_, _ = echo.Unary(context.Background(), cc)
		return late.Calls() > 0
	})
}

func TestBadInput(t *testing.T) {
	b := memoryBackend(t)
	node := selector.Node{ID: "a", Addr: "127.0.0.1:1"}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"interval = TTL", newReg(b.reg, "echo", node, health.WithTTL(time.Second), health.WithInterval(time.Second)), "must be below the TTL"},
		{"interval > TTL", newReg(b.reg, "echo", node, health.WithTTL(time.Second), health.WithInterval(2*time.Second)), "must be below the TTL"},
		{"zero TTL", newReg(b.reg, "echo", node, health.WithTTL(0)), "WithTTL(0s): must be positive"},
		{"negative interval", newReg(b.reg, "echo", node, health.WithInterval(-time.Second)), "must be positive"},
		{"jitter reaches TTL", newReg(b.reg, "echo", node, health.WithTTL(time.Second), health.WithInterval(900*time.Millisecond), health.WithJitter(0.2)), "jitter reaches the TTL"},
		{"empty service", newReg(b.reg, "", node), "empty service name"},
		{"bad address", newReg(b.reg, "echo", selector.Node{ID: "a", Addr: "nowhere"}), "does not parse"},
		{"no registry", newReg(nil, "echo", node), "nil registry"},
		{"bad tick", func() error { _, err := health.NewMemory(health.WithTick(0)); return err }(), "must be positive"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, tc.err, tc.want)
		}
	}
	backends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		if err := b.reg.Register(ctx, "echo", node, time.Minute); err != nil {
			t.Fatal(err)
		}
		err := b.reg.Register(ctx, "echo", selector.Node{ID: "a", Addr: "127.0.0.1:2"}, time.Minute)
		if err == nil || !strings.Contains(err.Error(), `node "a" is registered at "127.0.0.1:1"`) {
			t.Fatalf("same ID, another address: %v", err)
		}
		if err := b.reg.Register(ctx, "", node, time.Minute); err == nil {
			t.Fatal("empty service accepted")
		}
		if err := b.reg.Register(ctx, "echo", selector.Node{ID: "b", Addr: "127.0.0.1:99999"}, time.Minute); err == nil {
			t.Fatal("a bad port accepted")
		}
	})
}

func newReg(reg health.Registry, service string, n selector.Node, opts ...health.RegistrarOption) error {
	_, err := health.NewRegistrar(reg, service, n, opts...)
	return err
}

func TestEtcdSkipsMalformedEntries(t *testing.T) {
	var malformed sync.Map
	b := etcdBackend(t, etcd.Hooks{OnMalformed: func(key string, err error) { malformed.Store(key, err) }})
	srvCli, err := clientv3.New(clientv3.Config{Endpoints: []string{b.etcd.Endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srvCli.Close()
	ctx := context.Background()
	w, err := b.reg.Watch(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := w.Next(); err != nil { // the empty start
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"garbage":  "not json",
		"bad-addr": `{"id":"bad-addr","addr":"localhost"}`,
		"other-id": `{"id":"someone-else","addr":"127.0.0.1:5"}`,
	} {
		if _, err := srvCli.Put(ctx, etcd.DefaultPrefix+"echo/"+k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.reg.Register(ctx, "echo", selector.Node{ID: "good", Addr: "127.0.0.1:6"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := b.reg.List(ctx, "echo")
	if err != nil || len(got) != 1 || got[0].ID != "good" {
		t.Fatalf("List: %v, %v; want only the good node", got, err)
	}
	for {
		nodes, err := w.Next()
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 1 && nodes[0].ID == "good" {
			break
		}
		for _, n := range nodes {
			if n.ID != "good" {
				t.Fatalf("the watch delivered a malformed entry: %v", nodes)
			}
		}
	}
	for _, k := range []string{"garbage", "bad-addr", "other-id"} {
		if _, ok := malformed.Load(etcd.DefaultPrefix + "echo/" + k); !ok {
			t.Errorf("malformed entry %s was not reported", k)
		}
	}
}
