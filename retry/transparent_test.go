package retry_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

// What a caller observes of an RPC stays as a bare client would see it,
// whatever the retry engine did: headers, trailers and peer (of the attempt
// that answered), OnFinish (once), the error's text, when a stream reaches
// the server, the codes at deadlines.

// tagNodes makes every node set a header and a trailer naming it.
func tagNodes(c *client, slow string, delay time.Duration) {
	for _, n := range c.cluster.Nodes {
		id := n.ID
		n.SetFault(func(ctx context.Context, _ string) error {
			_ = grpc.SetHeader(ctx, metadata.Pairs("node", id))
			_ = grpc.SetTrailer(ctx, metadata.Pairs("node", id))
			if id == slow {
				select {
				case <-time.After(delay):
				case <-ctx.Done():
				}
			}
			return nil
		})
	}
}

// A hedged call hands the caller the header, trailer and peer of the
// attempt that answered (the cancelled hedge used to write last, and -race
// saw both write at once).
func TestHedgedCallKeepsTheWinnersHeaderTrailerAndPeer(t *testing.T) {
	p := mustPolicy(t, retry.WithIdempotent("*"), retry.WithHedging(10*time.Millisecond, "*"))
	c := newClient(t, 2, `{"strategy":"round_robin"}`, p)
	tagNodes(c, c.cluster.Nodes[0].ID, 300*time.Millisecond)
	addrs := map[string]string{}
	for _, n := range c.cluster.Nodes {
		addrs[n.ID] = n.Addr
	}
	for i := range 10 {
		var header, trailer metadata.MD
		var pr peer.Peer
		id, err := call(context.Background(), c, grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&pr))
		if err != nil {
			t.Fatal(err)
		}
		if got := header.Get("node"); len(got) != 1 || got[0] != id {
			t.Fatalf("call %d answered by %s: header %v", i, id, header)
		}
		if got := trailer.Get("node"); len(got) != 1 || got[0] != id {
			t.Fatalf("call %d answered by %s: trailer %v", i, id, trailer)
		}
		if pr.Addr == nil || pr.Addr.String() != addrs[id] {
			t.Fatalf("call %d answered by %s at %s: peer %v", i, id, addrs[id], pr.Addr)
		}
	}
}

// grpc.OnFinish runs once per RPC, with its outcome, however many attempts
// it took: unary, hedged and streams alike.
func TestOnFinishRunsOncePerRPC(t *testing.T) {
	for _, hedged := range []bool{false, true} {
		opts := []retry.Option{retry.WithIdempotent("*")}
		if hedged {
			opts = append(opts, retry.WithHedging(time.Millisecond, "*"))
		}
		p := mustPolicy(t, opts...)
		c := newClient(t, 3, `{"strategy":"round_robin"}`, p)
		c.cluster.Nodes[0].SetFault(echo.FailWith(codes.Unavailable))
		c.cluster.Nodes[1].SetFault(echo.FailWith(codes.Unavailable))
		for i := range 6 {
			var finished atomic.Int32
			var last atomic.Value
			_, err := call(context.Background(), c, grpc.OnFinish(func(err error) { finished.Add(1); last.Store(status.Code(err)) }))
			if err != nil {
				t.Fatal(err)
			}
			if n := finished.Load(); n != 1 || last.Load() != codes.OK {
				t.Fatalf("hedged %v, call %d: OnFinish ran %d times, last with %v; want once, OK", hedged, i, n, last.Load())
			}
		}
	}
	// A stream whose opening is retried (a node that refuses connections).
	p := mustPolicy(t)
	c := newClient(t, 2, `{"strategy":"round_robin"}`, p)
	for i := range 6 {
		var finished atomic.Int32
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := echo.Bidi(ctx, c.cc, 2, grpc.OnFinish(func(error) { finished.Add(1) }))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		testcluster.WaitFor(t, 5*time.Second, "OnFinish of the stream", func() bool { return finished.Load() > 0 })
		if n := finished.Load(); n != 1 {
			t.Fatalf("stream %d: OnFinish ran %d times, want once", i, n)
		}
	}
}

// A reply larger than the client's own limit is the client's
// ResourceExhausted: not retried (the same reply would come back from
// every node), and not read as a server's overload (the adaptive limit
// stays off).
func TestClientSideResourceExhaustedIsNotAnOverload(t *testing.T) {
	p := mustPolicy(t, retry.WithIdempotent("*"))
	c := newClient(t, 3, `{"strategy":"round_robin"}`, p)
	_, err := call(context.Background(), c, grpc.MaxCallRecvMsgSize(2))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "larger than max") {
		t.Fatalf("a reply over the client's limit: %v", err)
	}
	if n := c.totalCalls(); n != 1 {
		t.Fatalf("the over-limit reply was asked for %d times, want once", n)
	}
	if st := p.Snapshot(); st.Limited {
		t.Fatalf("the client's own limit turned the concurrency limit on: %+v", st)
	}
}

// A retried failure's text is the last attempt's, as without retries; the
// story of the attempts is reachable through errors.As.
func TestRetriedErrorKeepsItsText(t *testing.T) {
	p := mustPolicy(t, retry.WithIdempotent("*"))
	c := newClient(t, 3, `{"strategy":"round_robin"}`, p)
	for _, n := range c.cluster.Nodes {
		n.SetFault(echo.FailWith(codes.Unavailable))
	}
	_, err := call(context.Background(), c)
	var re *retry.Error
	if !errors.As(err, &re) || len(re.Attempts) != 3 {
		t.Fatalf("errors.As(*retry.Error): %v", err)
	}
	if want := re.Err.Error(); err.Error() != want || !strings.HasPrefix(want, "rpc error: code = Unavailable desc = ") {
		t.Fatalf("text %q, want the last attempt's %q", err.Error(), want)
	}
	if !strings.Contains(re.Summary(), "3 attempts") {
		t.Fatalf("Summary %q", re.Summary())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = call(ctx, c)
	if err.Error() != "rpc error: code = Canceled desc = context canceled" || !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller's cancellation: %q", err)
	}
}

// Hedging works for replies of any codec: an unimplemented method answers
// Unimplemented, as without rpcguard (hedging wanted a protobuf reply and
// failed with Internal).
func TestHedgingAnyReplyType(t *testing.T) {
	p := mustPolicy(t, retry.WithIdempotent("*"), retry.WithHedging(time.Millisecond, "*"))
	c := newClient(t, 2, `{"strategy":"round_robin"}`, p)
	var reply struct{ Name string }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.cc.Invoke(ctx, "/"+echo.Service+"/NoSuchMethod", &emptypb.Empty{}, &reply)
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("hedged unimplemented method: %v, want Unimplemented", err)
	}
}

// A server stream of a method that is not idempotent reaches the server
// when the caller sends its request, as without rpcguard (it waited for the
// first Recv); a first message slower than the per-attempt timeout ends
// the call with DeadlineExceeded, not Canceled.
func TestServerStreamTiming(t *testing.T) {
	p := mustPolicy(t, retry.WithPerAttemptTimeout(50*time.Millisecond), retry.WithIdempotent("/"+echo.Service+"/Unary"))
	c := newClient(t, 1, `{}`, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	descs := echo.StreamDescs()
	var desc grpc.StreamDesc
	for _, d := range descs {
		if d.ServerStreams && !d.ClientStreams {
			desc = d
		}
	}
	cs, err := c.cc.NewStream(ctx, &desc, "/"+echo.Service+"/"+desc.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(wrapperspb.String("1")); err != nil {
		t.Fatal(err)
	}
	_ = cs.CloseSend()
	testcluster.WaitFor(t, 5*time.Second, "the stream to reach the server before any Recv", func() bool { return c.totalCalls() > 0 })
	cancel()

	idem := mustPolicy(t, retry.WithPerAttemptTimeout(50*time.Millisecond), retry.WithIdempotent("*"))
	c2 := newClient(t, 1, `{}`, idem)
	c2.cluster.Nodes[0].SetFault(echo.Delay(time.Second))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := echo.ServerStream(ctx2, c2.cc, 2); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a first message slower than the per-attempt timeout: %v, want DeadlineExceeded", err)
	}
}

// A node that opens server streams but sends no first message within the
// per-attempt timeout is failing (the engine cancels the attempt, which
// gRPC reports as Canceled): it is ejected, and calls go elsewhere.
func TestStallingStreamNodeIsEjected(t *testing.T) {
	p := mustPolicy(t, retry.WithIdempotent("*"), retry.WithPerAttemptTimeout(50*time.Millisecond))
	cluster := testcluster.Start(t, 2)
	var ejected atomic.Int32
	hooks := selector.WithHooks(selector.Hooks{OnEject: func(selector.Node, time.Duration) { ejected.Add(1) }})
	cc := testcluster.Dial(t, "rpcguard:///echo", testcluster.Resolver(t, cluster.Source(t), hooks),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"rpcguard_selector":{"strategy":"round_robin","ejection":{"consecutiveFailures":2}}}]}`),
		grpc.WithStreamInterceptor(p.StreamClientInterceptor()))
	stalling := cluster.Nodes[0]
	stalling.SetFault(echo.Delay(time.Second))
	// Round robin covers only ready connections: the stalling node's may
	// come up after a few streams went to the other. Every stream must
	// succeed, and the ejection must come within the deadline.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ejected.Load() == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("the node that never sent a first message in time was not ejected after %d streams", i)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := echo.ServerStream(ctx, cc, 1, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
}

// A wait-for-ready call to a node that refuses connections ends at the
// caller's deadline with gRPC's explanation (the last connection error), as
// a bare client's does, and still answers errors.Is(context.DeadlineExceeded).
func TestWaitForReadyKeepsGRPCsExplanation(t *testing.T) {
	src, err := selector.NewStatic(selector.Node{ID: "down", Addr: testcluster.DeadAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	bare := testcluster.Dial(t, "rpcguard:///echo", testcluster.Resolver(t, src),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	p := mustPolicy(t)
	guarded := testcluster.Dial(t, "rpcguard:///echo", testcluster.Resolver(t, src),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"rpcguard_selector":{}}]}`), grpc.WithUnaryInterceptor(p.UnaryClientInterceptor()))
	call := func(cc *grpc.ClientConn) error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := echo.Unary(ctx, cc, grpc.WaitForReady(true))
		return err
	}
	want, got := call(bare), call(guarded)
	if status.Code(got) != status.Code(want) || !errors.Is(got, context.DeadlineExceeded) {
		t.Fatalf("rpcguard: %v; bare: %v", got, want)
	}
	if strings.Contains(want.Error(), "connection refused") && !strings.Contains(got.Error(), "connection refused") {
		t.Fatalf("rpcguard lost gRPC's explanation: %q; bare: %q", got, want)
	}
}
