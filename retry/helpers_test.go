package retry_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client is a real cluster and a gRPC client through the rpcguard_selector
// balancer (configured by lb) with the policy's interceptors.
type client struct {
	cluster *testcluster.Cluster
	cc      *grpc.ClientConn
}

func newClient(t testing.TB, n int, lb string, p *retry.Policy) *client {
	t.Helper()
	c := &client{cluster: testcluster.Start(t, n)}
	nodes := make([]selector.Node, n)
	for i, nd := range c.cluster.Nodes {
		nodes[i] = selector.Node{ID: nd.ID, Addr: nd.Addr}
	}
	src, err := selector.NewStatic(nodes...)
	if err != nil {
		t.Fatal(err)
	}
	opts := []grpc.DialOption{
		testcluster.Resolver(t, src),
		grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{"rpcguard_selector":%s}]}`, lb)),
	}
	if p != nil {
		opts = append(opts, grpc.WithUnaryInterceptor(p.UnaryClientInterceptor()), grpc.WithStreamInterceptor(p.StreamClientInterceptor()))
	}
	c.cc = testcluster.Dial(t, "rpcguard:///echo", opts...)
	c.waitAllServing(t)
	return c
}

// waitAllServing makes calls, without retries, until every node has answered
// one, so that the balancer has every node ready.
func (c *client) waitAllServing(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := true
		for _, n := range c.cluster.Nodes {
			all = all && n.Calls() > 0
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every node answered within 10 s: %v", c.cluster.Calls())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = echo.Unary(ctx, c.cc, grpc.WaitForReady(true), retry.MaxAttempts(1))
		cancel()
	}
	for _, n := range c.cluster.Nodes {
		n.ResetCalls()
	}
}

func (c *client) totalCalls() int64 {
	var sum int64
	for _, v := range c.cluster.Calls() {
		sum += v
	}
	return sum
}

func mustPolicy(t testing.TB, opts ...retry.Option) *retry.Policy {
	t.Helper()
	p, err := retry.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// delays records the delays of OnRetry.
type delays struct {
	mu sync.Mutex
	d  []time.Duration
	n  atomic.Int64
}

func (r *delays) hook() retry.Hooks {
	return retry.Hooks{OnRetry: func(_ context.Context, info retry.RetryInfo) {
		r.n.Add(1)
		r.mu.Lock()
		r.d = append(r.d, info.Delay)
		r.mu.Unlock()
	}}
}

func (r *delays) max() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var m time.Duration
	for _, d := range r.d {
		m = max(m, d)
	}
	return m
}
