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
