package rpcguard_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/selector"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testcluster.HystrixGoroutines()...) }

func TestBadInput(t *testing.T) {
	src, _ := selector.NewStatic(selector.Node{ID: "a", Addr: "127.0.0.1:1"})
	for _, tc := range []struct {
		service string
		src     selector.Source
		opts    []rpcguard.Option
		want    string
	}{
		{"", src, nil, "empty service name"},
		{"greeter", nil, nil, "nil selector.Source"},
		{"bad name!", src, nil, `service name "bad name!": use letters, digits`},
		{"greeter/v1", src, nil, `service name "greeter/v1": use letters, digits`},
		{"greeter", src, []rpcguard.Option{rpcguard.WithServiceConfig(`{"loadBalancingConfig":[]}`)}, "use WithBalancerConfig"},
		{"greeter", src, []rpcguard.Option{rpcguard.WithServiceConfig(`[1]`)}, "WithServiceConfig: not a JSON object"},
		{"greeter", src, []rpcguard.Option{rpcguard.WithSelectorOptions(selector.WithStrategy("fastest"))}, `unknown strategy "fastest"`},
		{"greeter", src, []rpcguard.Option{rpcguard.WithBalancerConfig(`{"strategy":"fastest"}`),
			rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials()))}, `unknown strategy "fastest"`},
	} {
		_, err := rpcguard.NewClient(tc.service, tc.src, tc.opts...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.service, err, tc.want)
		}
	}
}

// What a user gets from NewClient with no options must never refuse, cut or
// slow a call a healthy service would serve: 64 callers at once against 3
// healthy 5 ms nodes all succeed, and a 1.5 s call with a 5 s deadline
// succeeds.
func TestDefaultsServeAHealthyService(t *testing.T) {
	c := testcluster.Start(t, 3)
	for _, n := range c.Nodes {
		n.SetFault(echo.Delay(5 * time.Millisecond))
	}
	src := c.Source(t)
	cc, err := rpcguard.NewClient("defaults", src, rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	call := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := echo.Unary(ctx, cc, grpc.WaitForReady(true))
		return err
	}
	testcluster.InParallel(t, 64, 20, func() error { return call(5 * time.Second) })
	var total int64
	for _, n := range c.Calls() {
		total += n
	}
	if total != 64*20 {
		t.Fatalf("%d calls reached the servers, want %d (one attempt each)", total, 64*20)
	}
	for _, n := range c.Nodes {
		n.SetFault(echo.Delay(1500 * time.Millisecond))
	}
	if err := call(5 * time.Second); err != nil {
		t.Fatalf("a 1.5 s call with a 5 s deadline: %v", err)
	}
}

// A nil *health.Memory is a nil Source: NewClient says so, instead of a
// panic later in a gRPC goroutine.
func TestNilRegistryIsAnError(t *testing.T) {
	var m *health.Memory
	_, err := rpcguard.NewClient("greeter", m, rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err == nil || !strings.Contains(err.Error(), "nil") {
		t.Fatalf("NewClient with a nil *health.Memory: %v, want an error", err)
	}
}

// A healthCheckConfig given with WithServiceConfig joins rpcguard's
// balancer instead of replacing it: calls still spread over the nodes, a
// NOT_SERVING node gets none, and the selector's hooks (WithSelectorOptions)
// run; a grpc.WithDefaultServiceConfig among the dial options does not
// replace rpcguard's (it is applied last).
func TestNewClientComposesServiceConfigAndSelectorOptions(t *testing.T) {
	c := testcluster.Start(t, 3)
	src := c.Source(t)
	var updates atomic.Int32
	cc, err := rpcguard.NewClient("composed", src,
		rpcguard.WithServiceConfig(`{"healthCheckConfig":{"serviceName":"rpcguard.test.Echo"}}`),
		rpcguard.WithSelectorOptions(selector.WithHooks(selector.Hooks{OnUpdate: func([]selector.Node) { updates.Add(1) }})),
		rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	c.Nodes[2].SetServing(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	testcluster.WaitFor(t, 10*time.Second, "calls on node-0 and node-1", func() bool {
		_, _ = echo.Unary(ctx, cc, grpc.WaitForReady(true))
		return c.Nodes[0].Calls() > 0 && c.Nodes[1].Calls() > 0
	})
	before := c.Nodes[2].Calls()
	for range 30 {
		if _, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}
	if c.Nodes[2].Calls() != before {
		t.Fatal("the NOT_SERVING node got calls: health checking is off")
	}
	if updates.Load() == 0 {
		t.Fatal("the selector's OnUpdate hook never ran")
	}
}

// An interceptor of a nil stack fails its calls with a clear error instead
// of panicking.
func TestNilStackInterceptorsAreErrors(t *testing.T) {
	err := rpcguard.UnaryClientInterceptor(nil)(context.Background(), "/x.Y/Z", nil, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "nil *stack.Stack") {
		t.Fatalf("unary: %v", err)
	}
	if _, err := rpcguard.StreamClientInterceptor(nil)(context.Background(), &grpc.StreamDesc{}, nil, "/x.Y/Z", nil); err == nil {
		t.Fatal("stream: no error")
	}
}
