package gomicro_test

import (
	"net/url"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	microetcd "github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/health/etcd/etcdtest"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
)

// etcdRegistry is go-micro's etcd registry plugin (registry/etcd v1.2.0,
// what the seeds run) on a real embedded etcd.
func etcdRegistry(t *testing.T) registry.Registry {
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
	reg := microetcd.NewRegistry(registry.Addrs(u.Host), registry.Timeout(2*time.Second))
	// The plugin has no Close, and its etcd client would outlive the test:
	// close it through its unexported field (test-only).
	f := reflect.ValueOf(reg).Elem().FieldByName("client")
	cli := *(**clientv3.Client)(unsafe.Pointer(f.UnsafeAddr()))
	t.Cleanup(func() { _ = cli.Close() })
	return reg
}

// microCrashable passes a go-micro registry's calls through until the node
// crashes: from then on its renewals and deregistration are lost.
type microCrashable struct {
	registry.Registry
	crashed     atomic.Bool
	mu          sync.Mutex
	lastRenewal time.Time
}

func (c *microCrashable) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	if c.crashed.Load() {
		return nil
	}
	err := c.Registry.Register(s, opts...)
	c.mu.Lock()
	c.lastRenewal = time.Now()
	c.mu.Unlock()
	return err
}

func (c *microCrashable) Deregister(s *registry.Service, opts ...registry.DeregisterOption) error {
	if c.crashed.Load() {
		return nil
	}
	return c.Registry.Deregister(s, opts...)
}

// go-micro services on the etcd registry plugin, with a dead node
// registered: every call succeeds, about one attempt per call once it is
// ejected. Then one server crashes (its 1 s lease is no longer renewed,
// it never deregisters): no attempt goes to it later than TTL + 1 s after
// its last renewal, though the selector ejects nothing; the plugin's
// watcher loses events, and the Source re-lists.
func TestGoMicroOnTheEtcdRegistryPlugin(t *testing.T) {
	reg := etcdRegistry(t)
	brk := newMicroBroker()
	crashing := &microCrashable{Registry: reg}
	const ttl = time.Second
	for i, id := range []string{"greeter-0", "greeter-1", "greeter-2"} {
		r := reg
		if i == 2 {
			r = crashing
		}
		mucp.start(t, id, r, brk, server.RegisterTTL(ttl), server.RegisterInterval(ttl/4))
	}
	dead := &registry.Node{Id: "greeter-dead", Address: testcluster.DeadAddr(t)}
	if err := reg.Register(&registry.Service{Name: "greeter", Nodes: []*registry.Node{dead}}, registry.RegisterTTL(time.Minute)); err != nil {
		t.Fatal(err)
	}
	policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithPerAttemptTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("dead node", func(t *testing.T) {
		f := &fleet{k: mucp, reg: reg, brk: brk}
		f.cli = f.client(t, []gomicro.Option{gomicro.WithRetry(policy)})
		for i := range 300 {
			if _, err := f.call("x"); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
	})
	t.Run("crashed node", func(t *testing.T) {
		crashAt, last := crashRun(t, reg, brk, "greeter-greeter-2", ttl+2*time.Second, func() { crashing.crashed.Store(true) })
		crashing.mu.Lock()
		renewed := crashing.lastRenewal
		crashing.mu.Unlock()
		leftWithin(t, crashAt, renewed, last, ttl)
	})
}

// etcdPluginRegistry is etcdRegistry, under the name the tests that run on
// v4 and v5 alike use (v5 has the registry in its core).
func etcdPluginRegistry(t *testing.T) registry.Registry { return etcdRegistry(t) }
