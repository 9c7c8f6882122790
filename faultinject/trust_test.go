package faultinject_test

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/faultinject"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

// A client-side rule with a Node fires on the node rpcguard's selector
// picked, and a Down node is a refused connection: a call that is not
// idempotent is retried on another node, and the down node sees nothing.
func TestClientNodeRuleDownIsARefusedConnection(t *testing.T) {
	var fired atomic.Int64
	inj := mustNew(t, 1, []faultinject.Rule{{Name: "down", Node: "node-1", Rate: 1, Down: true}},
		faultinject.WithHooks(faultinject.Hooks{OnFault: func(string, string, string, string) { fired.Add(1) }}))
	c := testcluster.Start(t, 3)
	src := c.Source(t)
	policy, err := retry.New() // no method idempotent
	if err != nil {
		t.Fatal(err)
	}
	cc := testcluster.Dial(t, "rpcguard:///echo", testcluster.Resolver(t, src),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"rpcguard_selector":{"strategy":"round_robin"}}]}`),
		grpc.WithChainUnaryInterceptor(policy.UnaryClientInterceptor(), inj.UnaryClientInterceptor()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// At least 20 calls, and on until the rule fired: round robin covers
	// only ready connections, and node-1's may come up after the others'.
	for i := 0; i < 20 || fired.Load() == 0; i++ {
		if id, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); err != nil || id == "node-1" {
			t.Fatalf("call %d: %q, %v; want success on another node (the rule fired %d times)", i, id, err, fired.Load())
		}
	}
	if c.Nodes[1].Calls() != 0 {
		t.Fatalf("the down node served %d calls", c.Nodes[1].Calls())
	}
}

// Injected errors keep their identity: errors.Is finds the fault, and a
// Down also answers as a refused connection.
func TestInjectedErrorsKeepTheirIdentity(t *testing.T) {
	inj := mustNew(t, 1, []faultinject.Rule{{Method: "down", Rate: 1, Down: true}, {Method: "abort", Rate: 1, Abort: true}})
	ctx := context.Background()
	err := inj.Apply(ctx, "svc", "down", "", "")
	if !errors.Is(err, faultinject.ErrDown) || !errors.Is(err, syscall.ECONNREFUSED) || status.Code(err) != codes.Unavailable {
		t.Fatalf("Down: %v, want ErrDown, ECONNREFUSED and Unavailable", err)
	}
	err = inj.Apply(ctx, "svc", "abort", "", "")
	if !errors.Is(err, faultinject.ErrAborted) || errors.Is(err, syscall.ECONNREFUSED) || status.Code(err) != codes.Unavailable {
		t.Fatalf("Abort: %v, want ErrAborted and Unavailable, not a refused connection", err)
	}
	n := testcluster.Start(t, 1).Nodes[0]
	cc := testcluster.Dial(t, "passthrough:///"+n.Addr, grpc.WithChainUnaryInterceptor(
		mustNew(t, 1, []faultinject.Rule{{Rate: 1, Down: true}}).UnaryClientInterceptor()))
	if _, err := echo.Unary(ctx, cc); !errors.Is(err, faultinject.ErrDown) {
		t.Fatalf("client interceptor: %v, want ErrDown", err)
	}
}

// On the plain API, a Down node applied inside the attempt is retried like
// a refused connection, even for a call that is not idempotent.
func TestPlainDownNodeIsRetried(t *testing.T) {
	inj := mustNew(t, 1, []faultinject.Rule{{Node: "a", Rate: 1, Down: true}})
	sel, err := selector.New(selector.WithStrategy(selector.RoundRobin))
	if err != nil {
		t.Fatal(err)
	}
	if err := sel.Update([]selector.Node{{ID: "a", Addr: "127.0.0.1:1"}, {ID: "b", Addr: "127.0.0.1:2"}}); err != nil {
		t.Fatal(err)
	}
	// A budget that allows every retry: this test is about what is retried
	// (the default budget's share is the subject of its own issue).
	policy, err := retry.New(retry.WithBudget(retry.Budget{Ratio: 1, MinPerSecond: 100}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		err := policy.Do(context.Background(), sel, func(ctx context.Context, n selector.Node) error {
			return inj.Apply(ctx, "svc", "Write", n.ID, "")
		})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// A server-side Down answers Unavailable after the request arrived (its
// doc says so): an idempotent call goes to another node, a call that is
// not idempotent fails with Unavailable rather than run twice.
func TestServerDownIsUnavailableAfterTheRequestArrived(t *testing.T) {
	inj := mustNew(t, 1, []faultinject.Rule{{Node: "down-0", Rate: 1, Down: true}})
	down, err := echo.Start("down-0", grpc.UnaryInterceptor(inj.UnaryServerInterceptor("down-0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(down.Kill)
	up, err := echo.Start("up-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Kill)
	src, err := selector.NewStatic(selector.Node{ID: down.ID, Addr: down.Addr}, selector.Node{ID: up.ID, Addr: up.Addr})
	if err != nil {
		t.Fatal(err)
	}
	for _, idempotent := range []bool{true, false} {
		policy, err := retry.New(retry.WithBudget(retry.Budget{Off: true}))
		if err != nil {
			t.Fatal(err)
		}
		cc := testcluster.Dial(t, "rpcguard:///echo", testcluster.Resolver(t, src),
			grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"rpcguard_selector":{"strategy":"round_robin"}}]}`),
			grpc.WithChainUnaryInterceptor(policy.UnaryClientInterceptor()))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// At least 20 calls; one that is not idempotent goes on until one
		// failed and one succeeded (round robin covers only ready
		// connections: down-0's may come up after up-1's).
		ok, failed := 0, 0
		for i := 0; i < 20 || !idempotent && (ok == 0 || failed == 0); i++ {
			_, err := echo.Unary(ctx, cc, grpc.WaitForReady(true), retry.Idempotent(idempotent))
			switch {
			case err == nil:
				ok++
			case status.Code(err) != codes.Unavailable:
				t.Fatalf("idempotent %v: %v after %d successes and %d failures, want Unavailable", idempotent, err, ok, failed)
			default:
				failed++
			}
		}
		cancel()
		if idempotent && failed != 0 {
			t.Fatalf("idempotent: %d of %d failed; want none", failed, ok+failed)
		}
	}
}
