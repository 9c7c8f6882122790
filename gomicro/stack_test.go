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
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/stack"
)

// The one stack behaves the same on every transport: the same table of
// cases (a breaker Timeout, a panic below the stack, the caller's
// cancellation mid-call, an open circuit, a spent retry budget) runs through
// rpcguard.NewClient (gRPC), gomicro's client wrapper (go-micro) and
// stack.Call (the plain API), each on a real call; below is what the layer
// under the stack does on every attempt (a gRPC interceptor, a go-micro
// client wrapper, the plain function), and the outcome the caller and the
// breaker see must be identical.

// observed is what a case observed on one transport.
type observed struct {
	code                    codes.Code
	open, budget, canceled  bool // errors.Is breaker.ErrOpen, retry.ErrBudgetExhausted, context.Canceled
	panicked                bool
	belowCalls              int // attempts that reached the layer below the stack
	failures, timeouts, cxl int64
	afterOK                 bool // the next healthy call succeeded (no slot leaked)
}

type stackCase struct {
	name     string
	settings breaker.Settings
	budget   *retry.Budget
	cancelIn time.Duration
	// below runs on every attempt; n counts them.
	below func(ctx context.Context, n int) error
	// repeat calls until the caller sees this (the circuit opens after its
	// window fills, on hystrix's own goroutine), within 5 s.
	until func(error) bool
	want  observed
}

func waitCtx(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-time.After(5 * time.Second):
		return errors.New("below: not cut short")
	}
}

var stackCases = []stackCase{
	{name: "breaker timeout", settings: breaker.Settings{Timeout: 50 * time.Millisecond, MaxConcurrent: 1},
		below: func(ctx context.Context, _ int) error { return waitCtx(ctx) },
		want:  observed{code: codes.DeadlineExceeded, belowCalls: 1, timeouts: 1, afterOK: true}},
	{name: "panic below", settings: breaker.Settings{MaxConcurrent: 1},
		below: func(context.Context, int) error { panic("below") },
		want:  observed{panicked: true, belowCalls: 1, failures: 1, afterOK: true}},
	{name: "cancel mid-call", settings: breaker.Settings{MaxConcurrent: 1}, cancelIn: 50 * time.Millisecond,
		below: func(ctx context.Context, _ int) error { return waitCtx(ctx) },
		want:  observed{code: codes.Canceled, canceled: true, belowCalls: 1, cxl: 1, afterOK: true}},
	{name: "breaker open", settings: breaker.Settings{VolumeThreshold: 4, ErrorPercent: 50, SleepWindow: time.Minute, MetricsRate: -1},
		below: func(context.Context, int) error { return status.Error(codes.Unavailable, "down") },
		until: func(err error) bool { return errors.Is(err, breaker.ErrOpen) },
		want:  observed{code: codes.Unavailable, open: true}},
	{name: "budget spent", budget: &retry.Budget{},
		below: func(context.Context, int) error { return status.Error(codes.Unavailable, "down") },
		want:  observed{code: codes.Unavailable, budget: true, belowCalls: 1, failures: 1, afterOK: true}},
}

// stackTransport makes a client of a transport on the stack s whose attempts
// run below first (until the case turns it off), and returns one call.
type stackTransport struct {
	name   string
	client func(t *testing.T, s *stack.Stack, below func(ctx context.Context) error) func(ctx context.Context) error
}

func stackTransports(t *testing.T) []stackTransport {
	cluster := testcluster.Start(t, 1)
	f := newFleet(t, 1, nil)
	return []stackTransport{
		{"gRPC", func(t *testing.T, s *stack.Stack, below func(ctx context.Context) error) func(ctx context.Context) error {
			cc, err := rpcguard.NewClient("echo", cluster.Source(t), rpcguard.WithStack(s), rpcguard.WithDialOptions(
				grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
					if err := below(ctx); err != nil {
						return err
					}
					return invoker(ctx, method, req, reply, cc, opts...)
				})))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cc.Close() })
			return func(ctx context.Context) error { _, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); return err }
		}},
		{"go-micro", func(t *testing.T, s *stack.Stack, below func(ctx context.Context) error) func(ctx context.Context) error {
			sel, err := gomicro.NewSelector(f.reg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sel.Close() })
			w, err := gomicro.NewClientWrapper(gomicro.WithStack(s))
			if err != nil {
				t.Fatal(err)
			}
			cli := f.k.client(client.PoolSize(0), client.Selector(sel), client.Registry(f.reg), client.Broker(f.brk),
				client.ContentType(f.k.contentType), client.Wrap(w), client.Wrap(func(next client.Client) client.Client {
					return &belowClient{Client: next, below: below}
				}))
			return func(ctx context.Context) error {
				var rsp Rsp
				return cli.Call(ctx, cli.NewRequest("greeter", "Greeter.Hello", &Req{Name: "x"}), &rsp)
			}
		}},
		{"plain", func(t *testing.T, s *stack.Stack, below func(ctx context.Context) error) func(ctx context.Context) error {
			sel, err := selector.New()
			if err != nil {
				t.Fatal(err)
			}
			if err := sel.Update([]selector.Node{{ID: "n1", Addr: "127.0.0.1:1"}, {ID: "n2", Addr: "127.0.0.1:2"}}); err != nil {
				t.Fatal(err)
			}
			return func(ctx context.Context) error {
				_, err := stack.Call(ctx, s, sel, stack.Op{Name: "plain"}, func(ctx context.Context, _ selector.Node) (struct{}, error) {
					return struct{}{}, below(ctx)
				})
				return err
			}
		}},
	}
}

// belowClient runs below before each attempt of the client under it.
type belowClient struct {
	client.Client
	below func(ctx context.Context) error
}

func (b *belowClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	if err := b.below(ctx); err != nil {
		return err
	}
	return b.Client.Call(ctx, req, rsp, opts...)
}

func TestStackSameOnEveryTransport(t *testing.T) {
	transports := stackTransports(t)
	for _, tc := range stackCases {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]observed{}
			for _, tr := range transports {
				got[tr.name] = runStackCase(t, tr, tc)
			}
			for name, o := range got {
				want := tc.want
				if name == "go-micro" {
					want.budget = false // a go-micro caller gets the last attempt's error, as without retries
				}
				if o != want {
					t.Errorf("%s: %+v, want %+v", name, o, want)
				}
			}
		})
	}
}

func runStackCase(t *testing.T, tr stackTransport, tc stackCase) observed {
	settings := tc.settings
	if settings == (breaker.Settings{}) {
		settings = breaker.DefaultSettings()
	}
	brk, err := breaker.New(breaker.WithNamespace(namespace()), breaker.WithSettings(settings))
	if err != nil {
		t.Fatal(err)
	}
	ropts := []retry.Option{retry.WithIdempotent("*"), retry.WithMaxAttempts(3)}
	if tc.budget != nil {
		ropts = append(ropts, retry.WithBudget(*tc.budget))
	}
	policy, err := retry.New(ropts...)
	if err != nil {
		t.Fatal(err)
	}
	s, err := stack.New(stack.WithBreaker(brk), stack.WithRetry(policy))
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	fail := true
	call := tr.client(t, s, func(ctx context.Context) error {
		if !fail {
			return nil
		}
		calls++
		return tc.below(ctx, calls)
	})
	once := func() (err error, panicked bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if tc.cancelIn > 0 {
			time.AfterFunc(tc.cancelIn, cancel)
		}
		defer func() {
			if recover() != nil {
				panicked = true
			}
		}()
		return call(ctx), false
	}
	err, panicked := once()
	if tc.until != nil {
		for deadline := time.Now().Add(5 * time.Second); !tc.until(err) && time.Now().Before(deadline); {
			err, panicked = once()
		}
		calls = 0
		err, panicked = once() // refused: nothing reaches the layer below
	}
	var o observed
	o.code, o.panicked, o.belowCalls = status.Code(err), panicked, calls
	if panicked {
		o.code = codes.OK
	}
	o.open, o.budget, o.canceled = errors.Is(err, breaker.ErrOpen), errors.Is(err, retry.ErrBudgetExhausted), errors.Is(err, context.Canceled)
	if tr.name == "go-micro" && err != nil && !panicked {
		// go-micro's own error (issue 25): read it in the other rows' terms.
		o.code = status.Code(gomicro.FromMicro(err))
		o.open, o.canceled = merrors.FromError(err).Id == gomicro.IDBreaker, o.code == codes.Canceled
	}
	if tc.until == nil {
		for _, c := range brk.Snapshot() {
			o.failures, o.timeouts, o.cxl = c.Failures, c.Timeouts, c.Canceled
		}
		fail = false
		err, _ := once()
		o.afterOK = err == nil
		if err != nil {
			t.Logf("%s: the healthy call after: %v", tr.name, err)
		}
	}
	if t.Failed() {
		t.Logf("%s: %v", tr.name, fmt.Sprint(err))
	}
	return o
}

// Down is not degraded, on every transport, with the default breaker: in a
// brownout (70% of attempts failing) the circuit stays closed and the
// retry budget gets the caller what it earns (the budgeted optimum is
// 35%; no retries give 30%; a circuit at hystrix's 50% opened); in an
// outage (every attempt failing) the circuit opens and at most 0.1
// attempts per call reach the dependency.
func TestBrownoutServedOutageRefused(t *testing.T) {
	for _, tr := range stackTransports(t) {
		t.Run(tr.name, func(t *testing.T) {
			// Each phase on a stack of its own: a circuit judges its last
			// 10 s, and an outage right after a brownout opens it once the
			// window's failures reach 90%.
			client := func(fail func(n int64) bool) (call func() error, attempts *atomic.Int64) {
				brk, err := breaker.New(breaker.WithNamespace(namespace()))
				if err != nil {
					t.Fatal(err)
				}
				// One node: a retry goes back to it after a backoff, kept
				// short so that the test is quick (the budget is the default).
				policy, err := retry.New(retry.WithIdempotent("*"), retry.WithBackoff(retry.Backoff{Initial: time.Millisecond, Max: time.Millisecond}))
				if err != nil {
					t.Fatal(err)
				}
				s, err := stack.New(stack.WithBreaker(brk), stack.WithRetry(policy))
				if err != nil {
					t.Fatal(err)
				}
				attempts = new(atomic.Int64)
				c := tr.client(t, s, func(context.Context) error {
					if fail(attempts.Add(1)) {
						return status.Error(codes.Unavailable, "injected")
					}
					return nil
				})
				return func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					return c(ctx)
				}, attempts
			}
			refused := func(err error) bool {
				return err != nil && (errors.Is(err, breaker.ErrOpen) || merrors.FromError(err).Id == gomicro.IDBreaker)
			}

			call, attempts := client(func(n int64) bool { return (n-1)%10 < 7 })
			ok := 0
			for range 300 {
				err := call()
				if refused(err) {
					t.Fatalf("the circuit opened in a brownout: %v", err)
				}
				if err == nil {
					ok++
				}
			}
			if ok < 99 { // 33%: more than no retry would give (30%), near the budget's 35%
				t.Fatalf("brownout: %d of 300 calls served (%d attempts), want at least 99", ok, attempts.Load())
			}

			call, attempts = client(func(int64) bool { return true })
			for i := 0; !refused(call()); i++ {
				if i == 100 {
					t.Fatal("the circuit did not open in an outage")
				}
			}
			before := attempts.Load()
			for range 100 {
				_ = call()
			}
			if n := attempts.Load() - before; n > 10 {
				t.Fatalf("outage: %d attempts for 100 calls once the circuit opened, want at most 10", n)
			}
		})
	}
}
