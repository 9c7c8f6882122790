package health_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/selector"
)

// Registration timing on a fake clock (testing/synctest), exact whatever
// the machine's load: renewals every third of the TTL (±10% jitter), a
// crashed node gone from the registry at its TTL, a failing check taking
// the node out once and back when it passes.

func memoryOnTheClock(t *testing.T) *health.Memory {
	t.Helper()
	m, err := health.NewMemory(health.WithTick(10 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func listedIDs(t *testing.T, m *health.Memory) int {
	t.Helper()
	nodes, err := m.List(context.Background(), "greeter")
	if err != nil {
		t.Fatal(err)
	}
	return len(nodes)
}

func TestRenewalsAndExpiryOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := memoryOnTheClock(t)
		const ttl = 3 * time.Second
		r, err := health.NewRegistrar(m, "greeter", selector.Node{ID: "n1", Addr: "127.0.0.1:7001"}, health.WithTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		// Every 1 s ±10%: 27 to 33 renewals in 30 s, and the first registration.
		if n := r.Snapshot().Renewals; n < 28 || n > 34 {
			t.Fatalf("%d registrations and renewals in 30 s with a TTL of %v, want 28..34", n, ttl)
		}
		r.Halt() // a crash: no more renewals, no deregistration
		last := r.Snapshot().LastRenewal
		time.Sleep(time.Until(last.Add(ttl)) - time.Millisecond)
		if listedIDs(t, m) != 1 {
			t.Fatal("the node left the registry before its TTL ran out")
		}
		time.Sleep(time.Millisecond + 10*time.Millisecond) // the TTL and one prune tick
		if listedIDs(t, m) != 0 {
			t.Fatal("the node is still registered a prune tick after its TTL")
		}
	})
}

func TestFailingCheckOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := memoryOnTheClock(t)
		var failing atomic.Bool
		var out, back atomic.Int32
		r, err := health.NewRegistrar(m, "greeter", selector.Node{ID: "n1", Addr: "127.0.0.1:7001"}, health.WithTTL(3*time.Second),
			health.WithCheck(func(context.Context) error {
				if failing.Load() {
					return errors.New("dependency down")
				}
				return nil
			}, time.Second),
			health.WithRegistrarHooks(health.RegistrarHooks{OnRegister: func() { back.Add(1) }, OnDeregister: func(error) { out.Add(1) }}))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		failing.Store(true)
		time.Sleep(10 * time.Second) // about ten renewal ticks, every one failing its check
		synctest.Wait()
		if out.Load() != 1 || back.Load() != 1 || listedIDs(t, m) != 0 {
			t.Fatalf("a check failing for 10 s: %d deregistrations, %d registrations, %d listed; want 1, 1 (the first), 0", out.Load(), back.Load(), listedIDs(t, m))
		}
		failing.Store(false)
		time.Sleep(1200 * time.Millisecond) // one interval, with its jitter
		synctest.Wait()
		if back.Load() != 2 || listedIDs(t, m) != 1 {
			t.Fatalf("the check passing again: %d registrations, %d listed; want 2, 1", back.Load(), listedIDs(t, m))
		}
		if err := r.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// stallingRegistry is the real memory registry, except that registering
// node "slow" waits until release is closed or its context ends: a registry
// that hangs on one call.
type stallingRegistry struct {
	*health.Memory
	release chan struct{}
}

func (r *stallingRegistry) Register(ctx context.Context, service string, node selector.Node, ttl time.Duration) error {
	if node.ID == "slow" {
		select {
		case <-r.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return r.Memory.Register(ctx, service, node, ttl)
}

// A Keeper never holds a lock across a registry call: while one node's
// registration hangs, other nodes are held and released, and a second Hold
// of the hanging node waits only for that node.
func TestKeeperNeverWaitsOnAnotherNodesRegistryCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := &stallingRegistry{Memory: memoryOnTheClock(t), release: make(chan struct{})}
		k, err := health.NewKeeper(reg, health.WithTTL(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		slowDone := make(chan error, 1)
		go func() {
			slowDone <- k.Hold(context.Background(), "greeter", selector.Node{ID: "slow", Addr: "127.0.0.1:7001"})
		}()
		synctest.Wait() // the slow registration is hanging
		ctx := context.Background()
		start := time.Now() // the fake clock: it moves only if every goroutine waits
		if err := k.Hold(ctx, "greeter", selector.Node{ID: "fast", Addr: "127.0.0.1:7002"}); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Fatalf("holding another node waited %v for the hanging registration", waited)
		}
		close(reg.release)
		if err := <-slowDone; err != nil {
			t.Fatal(err)
		}
		if err := k.Release(ctx, "greeter", "fast"); err != nil {
			t.Fatal(err)
		}
		if err := k.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := k.Close(ctx); err != nil {
			t.Fatalf("a second Close: %v", err)
		}
		if err := k.Hold(ctx, "greeter", selector.Node{ID: "late", Addr: "127.0.0.1:7003"}); !errors.Is(err, selector.ErrClosed) {
			t.Fatalf("Hold after Close: %v, want selector.ErrClosed", err)
		}
	})
}
