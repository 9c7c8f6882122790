package gomicro_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/faultinject"
	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

func newInjector(t *testing.T, rules ...faultinject.Rule) *faultinject.Injector {
	t.Helper()
	inj, err := faultinject.New(1, rules)
	if err != nil {
		t.Fatal(err)
	}
	return inj
}

// faultyFleet is a fleet whose servers run the handler wrapper with inj's
// faults, each as its own node.
func faultyFleet(t *testing.T, n int, inj *faultinject.Injector, wopts []gomicro.Option, sopts ...gomicro.Option) *fleet {
	t.Helper()
	return faultyFleetOf(t, mucp, n, inj, wopts, sopts...)
}

// faultyFleetOf is faultyFleet over a kind of transport.
func faultyFleetOf(t *testing.T, k kind, n int, inj *faultinject.Injector, wopts []gomicro.Option, sopts ...gomicro.Option) *fleet {
	t.Helper()
	f := &fleet{k: k, reg: newMicroRegistry(), brk: newMicroBroker()}
	for i := range n {
		hw, err := gomicro.NewHandlerWrapper(append([]gomicro.Option{gomicro.WithBreaker(newBreaker(t)),
			gomicro.WithFaults(inj, fmt.Sprintf("greeter-greeter-%d", i))}, sopts...)...)
		if err != nil {
			t.Fatal(err)
		}
		f.servers = append(f.servers, k.start(t, fmt.Sprintf("greeter-%d", i), f.reg, f.brk, server.WrapHandler(hw)))
	}
	f.cli = f.client(t, wopts)
	return f
}

// A black-holed node (it accepts and never answers) under 4 callers:
// every call succeeds within a per-attempt timeout of 100 ms, which the
// servers see as their own deadline (the hung handler ends with it).
func TestBlackHoledNode(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { blackHoled(t, k) })
	}
}

func blackHoled(t *testing.T, k kind) {
	if k.name == mucp.name && testcluster.RaceDetector {
		// go-micro's mucp client reads a reply on one goroutine while its
		// call, timed out, closes the stream's buffer on another (client
		// rpc_codec.go, v4.11 and v5.30): the race detector flags it when the
		// server's answer at its deadline meets the attempt's timeout. Not
		// ours to fix; .ci/run runs this test without -race too.
		t.Skip("go-micro's mucp client races when an attempt times out as its answer arrives: run without -race")
	}
	var holed atomic.Int64
	inj, err := faultinject.New(1, []faultinject.Rule{{Name: "black hole", Node: "greeter-greeter-2", Rate: 1, Hang: true}},
		faultinject.WithHooks(faultinject.Hooks{OnFault: func(string, string, string, string) { holed.Add(1) }}))
	if err != nil {
		t.Fatal(err)
	}
	// Attempts to spare, no budget and (below) tried nodes reused: under a
	// loaded -race run, a healthy node's attempt (a dial, then the call)
	// can pass 100 ms too.
	policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithPerAttemptTimeout(100*time.Millisecond),
		retry.WithMaxAttempts(5), retry.WithBudget(retry.Budget{Off: true}))
	if err != nil {
		t.Fatal(err)
	}
	f := faultyFleetOf(t, k, 3, inj, nil)
	f.sopts = []selector.Option{selector.WithStrategy(selector.PowerOfTwo), selector.WithEjection(selector.DefaultEjection()), selector.WithReuseTried()}
	f.cli = f.client(t, []gomicro.Option{gomicro.WithRetry(policy)})
	testcluster.InParallel(t, 4, 25, func() error {
		rsp, err := f.call("x")
		if err == nil && rsp.From == "greeter-2" {
			return errors.New("the black-holed node answered")
		}
		return err
	})
	if holed.Load() == 0 {
		t.Fatal("no attempt reached the black-holed node: the test shows nothing")
	}
	for _, s := range f.servers[:2] {
		if left := time.Duration(s.maxLeft.Load()); left < 0 || left > 100*time.Millisecond {
			t.Fatalf("%s saw %v left to its deadline; want the attempt's 100 ms at most", s.id, left)
		}
	}
}

// Client-side faults by node, through the call wrapper: a node that is
// Down is never sent a call (even a call that is not idempotent goes
// elsewhere), and when every node is down the caller's error answers
// errors.Is for the fault and for the exhausted attempts.
func TestCallWrapperFaults(t *testing.T) {
	inj := newInjector(t, faultinject.Rule{Name: "down", Node: "greeter-greeter-1", Rate: 1, Down: true})
	cw, err := gomicro.NewCallWrapper(gomicro.WithFaults(inj, ""))
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{k: mucp, reg: newMicroRegistry(), brk: newMicroBroker()}
	for i := range 3 {
		f.servers = append(f.servers, startMicro(t, fmt.Sprintf("greeter-%d", i), f.reg, f.brk))
	}
	f.cli = f.client(t, nil, client.WrapCall(cw)) // retry.New(): nothing idempotent
	for i := range 60 {
		if _, err := f.call("x"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := f.servers[1].calls.Load(); n != 0 {
		t.Fatalf("the node that is down served %d calls", n)
	}
	if err := inj.SetRules(faultinject.Rule{Name: "all down", Rate: 1, Down: true}); err != nil {
		t.Fatal(err)
	}
	_, err = f.call("x")
	if !errors.Is(err, faultinject.ErrDown) || status.Code(err) != codes.Unavailable {
		t.Fatalf("every node down: %v (code %v); want the last attempt's ErrDown, Unavailable", err, status.Code(err))
	}
}

// Hedging under -race: with one node 300 ms slow, a hedge after 20 ms
// answers every call from a fast node, each attempt decoding into its own
// reply; concurrent callers.
func TestHedgedGoMicroCalls(t *testing.T) {
	inj := newInjector(t, faultinject.Rule{Name: "slow", Node: "greeter-greeter-0", Rate: 1, Latency: faultinject.Fixed(300 * time.Millisecond)})
	var hedges atomic.Int64
	policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithHedging(20*time.Millisecond, "Greeter.Hello"),
		retry.WithBudget(retry.Budget{Off: true}),
		retry.WithHooks(retry.Hooks{OnHedge: func(context.Context, retry.RetryInfo) { hedges.Add(1) }}))
	if err != nil {
		t.Fatal(err)
	}
	f := faultyFleet(t, 3, inj, []gomicro.Option{gomicro.WithRetry(policy)})
	testcluster.InParallel(t, 8, 10, func() error {
		rsp, err := f.call("x")
		switch {
		case err != nil:
			return err
		case rsp.From == "" || rsp.From == "greeter-0":
			return fmt.Errorf("answered by %q; want a fast node's answer", rsp.From)
		}
		return nil
	})
	if hedges.Load() == 0 {
		t.Fatal("no call was hedged")
	}
}

// Every node answering 503 with a budget of retries: the budget runs out,
// calls make one attempt each, and the caller gets that attempt's 503 as
// go-micro returned it (what it would have seen without retries).
func TestBudgetExhaustedOverGoMicro(t *testing.T) {
	inj := newInjector(t, faultinject.Rule{Name: "overwhelmed", Rate: 1, HTTPStatus: 503})
	var retries atomic.Int64
	policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithBudget(retry.Budget{Ratio: 0.1, MinPerSecond: 1}),
		retry.WithHooks(retry.Hooks{OnRetry: func(context.Context, retry.RetryInfo) { retries.Add(1) }}))
	if err != nil {
		t.Fatal(err)
	}
	f := faultyFleet(t, 3, inj, []gomicro.Option{gomicro.WithRetry(policy)})
	testcluster.WaitFor(t, 10*time.Second, "a call that the spent budget kept from retrying", func() bool {
		before := retries.Load()
		_, err = f.call("x")
		return retries.Load() == before
	})
	if merrors.FromError(err).Code != 503 || status.Code(gomicro.FromMicro(err)) != codes.Unavailable {
		t.Fatalf("%#v; want the last attempt's 503", err)
	}
}

// The server's breaker sheds load: past its concurrency limit a call is
// refused with 429 (ResourceExhausted), and once its circuit is open with
// 503 (Unavailable), over mucp and over the grpc plugins.
func TestServerBreakerRefusals(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { serverRefusals(t, k) })
	}
}

func serverRefusals(t *testing.T, k kind) {
	inj := newInjector(t, faultinject.Rule{Name: "slow", Rate: 1, Latency: faultinject.Fixed(300 * time.Millisecond)})
	limited, err := breaker.New(breaker.WithNamespace(namespace()), breaker.WithSettings(breaker.Settings{MaxConcurrent: 1}))
	if err != nil {
		t.Fatal(err)
	}
	// A client without rpcguard's adaptive limit, which would queue the
	// calls after the first 429 instead of sending them.
	policy, err := retry.New(retry.WithoutConcurrencyLimit())
	if err != nil {
		t.Fatal(err)
	}
	f := faultyFleetOf(t, k, 1, inj, []gomicro.Option{gomicro.WithRetry(policy)}, gomicro.WithBreaker(limited))
	var ok, refused atomic.Int64
	testcluster.InParallel(t, 8, 1, func() error {
		_, err := f.call("x")
		switch {
		case err == nil:
			ok.Add(1)
		case merrors.FromError(err).Code == 429 && status.Code(gomicro.FromMicro(err)) == codes.ResourceExhausted:
			refused.Add(1)
		default:
			return err
		}
		return nil
	})
	if ok.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("8 calls at once, a limit of 1: %d served, %d refused with 429; want both", ok.Load(), refused.Load())
	}

	if err := inj.SetRules(faultinject.Rule{Name: "failing", Rate: 1, HTTPStatus: 500}); err != nil {
		t.Fatal(err)
	}
	tripping, err := breaker.New(breaker.WithNamespace(namespace()), breaker.WithSettings(breaker.Settings{VolumeThreshold: 5, SleepWindow: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	f = faultyFleetOf(t, k, 1, inj, nil, gomicro.WithBreaker(tripping))
	testcluster.WaitFor(t, 10*time.Second, "the server's circuit to open", func() bool {
		_, err := f.call("x")
		return err != nil && merrors.FromError(err).Code == 503
	})
	if _, err := f.call("x"); status.Code(gomicro.FromMicro(err)) != codes.Unavailable || f.servers[0].calls.Load() != 0 {
		t.Fatalf("open circuit: %v (code %v), %d calls reached the handler; want Unavailable and none", err, status.Code(gomicro.FromMicro(err)), f.servers[0].calls.Load())
	}
}

// Per-call retry options travel as a go-micro call option: a call the
// policy does not retry once sent (nothing is idempotent by default) is
// retried on another node when the call says it is idempotent.
func TestWithCallOptions(t *testing.T) {
	var faulted atomic.Int64
	inj, err := faultinject.New(1, []faultinject.Rule{{Name: "overwhelmed", Node: "greeter-greeter-0", Rate: 1, HTTPStatus: 503}},
		faultinject.WithHooks(faultinject.Hooks{OnFault: func(string, string, string, string) { faulted.Add(1) }}))
	if err != nil {
		t.Fatal(err)
	}
	// Nothing idempotent.
	policy, err := retry.New(retry.WithPerAttemptTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	f := faultyFleet(t, 2, inj, []gomicro.Option{gomicro.WithRetry(policy)})
	call := func(cli client.Client, opts ...client.CallOption) error {
		_, err := hello(cli, "greeter", "x", opts...)
		return err
	}
	for call(f.cli) == nil { // until a call starts on the 503 node
		if faulted.Load() > 0 {
			t.Fatal("the 503 node answered a call that then succeeded: it was retried")
		}
	}
	// A fresh client (nothing ejected yet), idempotent for its calls.
	cli := f.client(t, []gomicro.Option{gomicro.WithRetry(policy)})
	before := faulted.Load()
	for i := range 20 {
		if err := call(cli, gomicro.WithCallOptions(retry.Idempotent(true))); err != nil {
			t.Fatalf("call %d, idempotent for this call: %v", i, err)
		}
	}
	if faulted.Load() == before {
		t.Fatal("no idempotent call reached the 503 node: the test shows nothing")
	}
}
