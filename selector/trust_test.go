package selector_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/selector"
)

// A server's MaxConnectionAge makes every connection cycle; the ejection of
// the failing node must survive its connection's cycles: it is ejected
// once, and gets no attempt while ejected.
func TestGRPCEjectionSurvivesConnectionCycling(t *testing.T) {
	var nodes []selector.Node
	var servers []*echo.Server
	for i := range 3 {
		n, err := echo.Start(fmt.Sprintf("node-%d", i), grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge: 150 * time.Millisecond, MaxConnectionAgeGrace: 50 * time.Millisecond}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Kill)
		servers = append(servers, n)
		nodes = append(nodes, selector.Node{ID: n.ID, Addr: n.Addr})
	}
	src, err := selector.NewStatic(nodes...)
	if err != nil {
		t.Fatal(err)
	}
	var ejects, updates atomic.Int32
	hooks := selector.WithHooks(selector.Hooks{
		OnEject:  func(selector.Node, time.Duration) { ejects.Add(1) },
		OnUpdate: func([]selector.Node) { updates.Add(1) },
	})
	cc := testcluster.Dial(t, "rpcguard:///echo", testcluster.Resolver(t, src, hooks), grpc.WithDefaultServiceConfig(
		`{"loadBalancingConfig":[{"rpcguard_selector":{"strategy":"round_robin","ejection":{"consecutiveFailures":3,"baseTime":"60s"}}}]}`))
	bad := servers[2]
	bad.SetFault(echo.FailWith(codes.Unavailable))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ejects.Load() == 0 {
		_, _ = echo.Unary(ctx, cc, grpc.WaitForReady(true))
		if ctx.Err() != nil {
			t.Fatal("the failing node was never ejected")
		}
	}
	afterEject, updatesAtEject := bad.Calls(), updates.Load()
	// Call until the connections have cycled many times (every cycle
	// rebuilds the picker: OnUpdate), bounded by the context.
	for updates.Load() < updatesAtEject+20 {
		_, _ = echo.Unary(ctx, cc, grpc.WaitForReady(true))
		if ctx.Err() != nil {
			t.Fatalf("connections cycled only %d times in 30 s", updates.Load()-updatesAtEject)
		}
	}
	if got := bad.Calls() - afterEject; got != 0 || ejects.Load() != 1 {
		t.Fatalf("over %d picker rebuilds the ejected node got %d attempts and was ejected %d times, want 0 and 1",
			updates.Load()-updatesAtEject, got, ejects.Load())
	}
}

// An Ejection that sets only ConsecutiveFailures takes the documented
// defaults for the rest (MaxPercent 50, BaseTime 30 s): it ejects.
func TestEjectionZeroFieldsTakeDefaults(t *testing.T) {
	var ejected []time.Duration
	s, err := selector.New(selector.WithEjection(selector.Ejection{ConsecutiveFailures: 3}),
		selector.WithHooks(selector.Hooks{OnEject: func(_ selector.Node, d time.Duration) { ejected = append(ejected, d) }}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(nodes(4)); err != nil {
		t.Fatal(err)
	}
	for range 40 {
		p, err := s.Pick(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if p.Node.ID == "n0" {
			p.Done(status.Error(codes.Unavailable, "down"), true)
		} else {
			p.Done(nil, true)
		}
	}
	if len(ejected) != 1 || ejected[0] != 30*time.Second {
		t.Fatalf("ejections %v, want one of 30s", ejected)
	}
}

// A pick check's error fails the pick as a refused connection: the node is
// tried and failed, the attempt not sent, and the next pick of the call
// goes elsewhere.
func TestPickCheckFailsThePickAsRefused(t *testing.T) {
	s, err := selector.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(nodes(2)); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused")
	ctx := selector.WithPickCheck(selector.NewRecord(context.Background()), func(n selector.Node) error {
		if n.ID == "n0" {
			return refused
		}
		return nil
	})
	var picked []string
	for range 2 {
		p, err := s.Pick(ctx)
		if err != nil {
			if !errors.Is(err, refused) {
				t.Fatalf("pick: %v, want the check's error", err)
			}
			a, _ := selector.AttemptFrom(ctx)
			if !a.Picked || a.Node.ID != "n0" || !a.Done || a.Sent {
				t.Fatalf("attempt %+v: want n0 picked, done, not sent", a)
			}
			picked = append(picked, "refused")
			continue
		}
		picked = append(picked, p.Node.ID)
		p.Done(nil, true)
	}
	if fmt.Sprint(picked) != "[refused n1]" && fmt.Sprint(picked) != "[n1 refused]" {
		t.Fatalf("picks %v, want n0 refused then n1", picked)
	}
	if _, err := s.Pick(ctx); !errors.Is(err, selector.ErrAllTried) {
		t.Fatalf("third pick: %v, want ErrAllTried (n0 counts as tried)", err)
	}
}

// A Group feeds a Selector from a Source, outside gRPC: bad entries are
// dropped one by one, and later sets replace earlier ones.
func TestGroupFeedsASelector(t *testing.T) {
	src, err := selector.NewStatic(nodes(2)...)
	if err != nil {
		t.Fatal(err)
	}
	g, err := selector.NewGroup(src)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	sel, err := g.Selector(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(sel.Nodes()); got != 2 {
		t.Fatalf("the group's selector has %d nodes, want 2", got)
	}
	if err := src.Update(nodes(3)...); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 5*time.Second, "the third node", func() bool { return len(sel.Nodes()) == 3 })
}
