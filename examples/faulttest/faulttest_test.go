package faulttest_test

// How to test your client against faults: start real servers on loopback
// with a faultinject interceptor, register them, dial them the way your
// program does (here rpcguard.NewClient), inject a fault, and assert what
// your users would see.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/examples/faulttest"
	"github.com/rpcguard/rpcguard/faultinject"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

// hystrix-go (under the breaker) keeps goroutines for the life of the
// process: tell the leak checker.
func TestMain(m *testing.M) {
	var ignore []goleak.Option
	for _, f := range breaker.HystrixGoroutines() {
		ignore = append(ignore, goleak.IgnoreAnyFunction(f))
	}
	goleak.VerifyTestMain(m, ignore...)
}

// waitFor polls cond until it holds, failing t after d: a test waits on
// the condition, never on a sleep.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// setup starts three servers with fault injection, registered in an
// in-memory registry, and a client with the rpcguard stack.
func setup(t *testing.T) (*faultinject.Injector, *grpc.ClientConn) {
	t.Helper()
	inj, err := faultinject.New(7, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := health.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	for i := range 3 {
		id := fmt.Sprintf("node-%d", i)
		n, err := echo.Start(id, grpc.ChainUnaryInterceptor(inj.UnaryServerInterceptor(id)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Kill)
		if err := reg.Register(context.Background(), "greeter", selector.Node{ID: id, Addr: n.Addr}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	policy, err := retry.New(retry.WithIdempotent("/rpcguard.test.Echo/*"), retry.WithPerAttemptTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	brk, err := breaker.New(breaker.WithNamespace("faulttest-" + t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := rpcguard.NewClient("greeter", reg, rpcguard.WithRetry(policy), rpcguard.WithBreaker(brk),
		rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	// Connect to every node before injecting faults.
	seen := map[string]bool{}
	waitFor(t, 10*time.Second, "every node", func() bool {
		id, err := echo.Unary(context.Background(), cc, grpc.WaitForReady(true))
		seen[id] = err == nil
		return len(seen) == 3
	})
	return inj, cc
}

// One node fails every call: your client still gets every greeting.
func TestClientSurvivesAnErroringNode(t *testing.T) {
	inj, cc := setup(t)
	if err := inj.SetRules(faultinject.Rule{Name: "node-1 down", Node: "node-1", Rate: 1, Code: codes.Unavailable}); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := faulttest.Client(context.Background(), cc); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// One node never answers: your client's own 1 s deadline is never reached,
// because each attempt is cut at 100 ms and retried elsewhere.
func TestClientSurvivesABlackHole(t *testing.T) {
	inj, cc := setup(t)
	if err := inj.SetRules(faultinject.Rule{Name: "node-2 hangs", Node: "node-2", Rate: 1, Hang: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := faulttest.Client(context.Background(), cc); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// Everything fails: your client gets Unavailable, and once the circuit
// opens it gets it at once, without loading the service.
func TestClientFailsFastInAnOutage(t *testing.T) {
	inj, cc := setup(t)
	if err := inj.SetRules(faultinject.Rule{Name: "outage", Rate: 1, Code: codes.Unavailable}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the circuit to open", func() bool {
		_, err := faulttest.Client(context.Background(), cc)
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("in an outage: %v, want Unavailable", err)
		}
		return errors.Is(err, breaker.ErrOpen)
	})
}
