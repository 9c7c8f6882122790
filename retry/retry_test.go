package retry_test

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

const unary = echo.UnaryMethod

func call(ctx context.Context, c *client, opts ...grpc.CallOption) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return echo.Unary(ctx, c.cc, opts...)
}

// A dead node (closed port) behind the plain API: with the per-call record
// every one of 10,000 calls of at most 2 attempts succeeds; a random choice
// that ignores the record fails about 1 call in 9 (1/3 × 1/3).
func TestDeadNodeWithAndWithoutCallRecord(t *testing.T) {
	cluster := testcluster.Start(t, 2)
	addrs := []string{cluster.Nodes[0].Addr, cluster.Nodes[1].Addr, testcluster.DeadAddr(t)}
	conns := map[string]*grpc.ClientConn{}
	var nodes []selector.Node
	for i, a := range addrs {
		conns[a] = testcluster.Dial(t, "passthrough:///"+a)
		nodes = append(nodes, selector.Node{ID: []string{"a", "b", "dead"}[i], Addr: a})
	}
	sel, err := selector.New(selector.WithStrategy(selector.Random))
	if err != nil {
		t.Fatal(err)
	}
	if err := sel.Update(nodes); err != nil {
		t.Fatal(err)
	}
	p := mustPolicy(t, retry.WithMaxAttempts(2), retry.WithBudget(retry.Budget{Off: true}), retry.WithIdempotent("*"))
	invoke := func(ctx context.Context, addr string) error {
		_, err := echo.Unary(ctx, conns[addr])
		return err
	}
	const calls = 10000
	run := func(fn func(ctx context.Context, n selector.Node) error) (failed int64) {
		var f atomic.Int64
		testcluster.InParallel(t, 8, calls/8, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.Do(ctx, sel, fn); err != nil {
				if status.Code(err) != codes.Unavailable {
					return err
				}
				f.Add(1)
			}
			return nil
		})
		return f.Load()
	}
	withRecord := run(func(ctx context.Context, n selector.Node) error { return invoke(ctx, n.Addr) })
	random := run(func(ctx context.Context, _ selector.Node) error { return invoke(ctx, addrs[rand.IntN(3)]) })
	t.Logf("failed calls of %d with 2 attempts: %d with the per-call record, %d (%.1f%%) choosing at random without it",
		calls, withRecord, random, 100*float64(random)/calls)
	if withRecord != 0 {
		t.Errorf("%d calls failed with the per-call record, want 0", withRecord)
	}
	if share := float64(random) / calls; share < 0.08 || share > 0.145 {
		t.Errorf("a random choice without the record failed %.1f%% of calls, want about 11%%", 100*share)
	}
}

// One node answering Unavailable, through gRPC: 10,000 calls of at most 2
// attempts all succeed.
func TestUnavailableNodeRetriedElsewhere(t *testing.T) {
	p := mustPolicy(t, retry.WithMaxAttempts(2), retry.WithBudget(retry.Budget{Off: true}), retry.WithIdempotent(unary))
	c := newClient(t, 3, `{"strategy":"random"}`, p)
	c.cluster.Nodes[1].SetFault(echo.FailWith(codes.Unavailable))
	testcluster.InParallel(t, 8, 1250, func() error { _, err := call(context.Background(), c); return err })
	if bad := c.cluster.Nodes[1].Calls(); bad == 0 {
		t.Fatal("the failing node got no calls: the test tested nothing")
	}
}

// One node failing every second call: all calls succeed and no retry waits
// (a large backoff would show in every retried call).
func TestFlakyNodeRetriesWithoutBackoff(t *testing.T) {
	var d delays
	p := mustPolicy(t, retry.WithMaxAttempts(2), retry.WithIdempotent(unary),
		retry.WithBackoff(retry.Backoff{Initial: 500 * time.Millisecond}), retry.WithHooks(d.hook()))
	c := newClient(t, 3, `{"strategy":"round_robin"}`, p)
	c.cluster.Nodes[0].SetFault(echo.FailEvery(2, codes.Unavailable))
	var lat []time.Duration
	for i := range 1500 {
		start := time.Now()
		if _, err := call(context.Background(), c); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("1,500 calls, %d retried: p50 %v, p99 %v", d.n.Load(), lat[len(lat)/2], lat[len(lat)*99/100])
	if d.n.Load() == 0 {
		t.Fatal("no call was retried: the test tested nothing")
	}
	if m := d.max(); m != 0 {
		t.Fatalf("a retry on an untried node waited %v, want no wait", m)
	}
}

// Ejection and retry together: once the failing node is ejected it gets no
// more attempts; attempts per call stay at or below 1.05 and no retry waits.
func TestEjectionKeepsAttemptsNearOne(t *testing.T) {
	var d delays
	p := mustPolicy(t, retry.WithHooks(d.hook()))
	c := newClient(t, 3, `{"strategy":"random","ejection":{}}`, p)
	bad := c.cluster.Nodes[2]
	bad.SetFault(echo.FailWith(codes.Unavailable))
	const calls = 2000
	for i := range calls { // one at a time: no attempt is in flight when the node is ejected
		if _, err := call(context.Background(), c, retry.Idempotent(true)); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if got := bad.Calls(); got != 5 {
		t.Errorf("the failing node got %d attempts, want 5 (then ejected)", got)
	}
	if per := float64(c.totalCalls()) / calls; per > 1.05 {
		t.Errorf("%.3f attempts reached servers per call, want at most 1.05", per)
	}
	if m := d.max(); m != 0 {
		t.Errorf("a retry waited %v, want none", m)
	}
}

// A black-hole node (accepts, never answers): a 100 ms per-attempt timeout
// moves every call to another node; none waits for its 10 s deadline.
func TestBlackHoleNodeCutByPerAttemptTimeout(t *testing.T) {
	var d delays
	p := mustPolicy(t, retry.WithPerAttemptTimeout(100*time.Millisecond), retry.WithIdempotent(unary), retry.WithHooks(d.hook()))
	c := newClient(t, 3, `{"strategy":"round_robin"}`, p)
	c.cluster.Nodes[0].SetFault(echo.Hang())
	for i := range 30 {
		if _, err := call(context.Background(), c); err != nil { // 10 s deadline: waiting for it would fail the call
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if hits := c.cluster.Nodes[0].Calls(); hits == 0 || d.n.Load() != hits {
		t.Fatalf("black hole got %d attempts and %d calls were retried: want every black-holed attempt retried once", hits, d.n.Load())
	}
}

// Hedging: node-0 is 200 ms slow; after 20 ms the call is hedged to another
// node, whose answer wins; the slow attempt is cancelled and its reply is
// never used.
func TestHedgingCancelsTheSlowAttempt(t *testing.T) {
	var slowStarted, slowCanceled atomic.Int64
	var hedges atomic.Int64
	p := mustPolicy(t, retry.WithIdempotent(unary), retry.WithHedging(20*time.Millisecond, unary),
		retry.WithHooks(retry.Hooks{OnHedge: func(context.Context, retry.RetryInfo) { hedges.Add(1) }}))
	c := newClient(t, 3, `{"strategy":"round_robin"}`, p)
	c.cluster.Nodes[0].SetFault(func(ctx context.Context, _ string) error {
		slowStarted.Add(1)
		select {
		case <-time.After(200 * time.Millisecond):
			return nil
		case <-ctx.Done():
			slowCanceled.Add(1)
			return status.FromContextError(ctx.Err()).Err()
		}
	})
	for i := range 30 {
		id, err := call(context.Background(), c)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if id == "node-0" {
			t.Fatalf("call %d returned the slow node's reply", i)
		}
	}
	if slowStarted.Load() == 0 || hedges.Load() < slowStarted.Load() {
		t.Fatalf("slow node got %d attempts, %d hedges: want every slow attempt hedged", slowStarted.Load(), hedges.Load())
	}
	testcluster.WaitFor(t, 5*time.Second, "the slow node to see every attempt cancelled", func() bool {
		return slowCanceled.Load() == slowStarted.Load()
	})
}

// All nodes Unavailable: with the default budget, attempts reaching servers
// per call stay at or below 1.25; without a budget, every call uses all 3.
func TestBudgetBoundsRetryStorm(t *testing.T) {
	const calls = 2000
	for _, tc := range []struct {
		name   string
		opt    retry.Option
		lo, hi float64
	}{
		{"default budget", retry.WithBudget(retry.DefaultBudget()), 1, 1.25},
		{"no budget", retry.WithBudget(retry.Budget{Off: true}), 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPolicy(t, tc.opt, retry.WithIdempotent(unary))
			c := newClient(t, 3, `{"strategy":"random"}`, p)
			for _, n := range c.cluster.Nodes {
				n.SetFault(echo.FailWith(codes.Unavailable))
			}
			var exhausted atomic.Int64
			testcluster.InParallel(t, 8, calls/8, func() error {
				_, err := call(context.Background(), c)
				if status.Code(err) != codes.Unavailable {
					return err
				}
				if errors.Is(err, retry.ErrBudgetExhausted) {
					exhausted.Add(1)
				}
				return nil
			})
			per := float64(c.totalCalls()) / calls
			t.Logf("%s: %.3f attempts per call; %d calls stopped by the budget", tc.name, per, exhausted.Load())
			if per < tc.lo || per > tc.hi {
				t.Errorf("%.3f attempts reached servers per call, want %v..%v", per, tc.lo, tc.hi)
			}
		})
	}
}

// The caller cancels during a 1 s backoff: the call returns at once with
// Canceled, and no further attempt reaches a server.
func TestCancelDuringBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var canceledAt time.Time
	p := mustPolicy(t, retry.WithIdempotent(unary),
		retry.WithBackoff(retry.Backoff{Func: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Second) }}),
		retry.WithHooks(retry.Hooks{OnRetry: func(_ context.Context, r retry.RetryInfo) {
			if r.Delay != time.Second {
				t.Errorf("retry delay %v, want the 1 s backoff (the only node was tried)", r.Delay)
			}
			canceledAt = time.Now()
			cancel()
		}}))
	c := newClient(t, 1, `{"reuseTried":true}`, p)
	c.cluster.Nodes[0].SetFault(echo.FailWith(codes.Unavailable))
	_, err := echo.Unary(ctx, c.cc)
	returned := time.Since(canceledAt)
	t.Logf("returned %v after the cancel", returned)
	if status.Code(err) != codes.Canceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v (code %v), want Canceled that errors.Is finds", err, status.Code(err))
	}
	if returned >= time.Second {
		t.Fatalf("returned %v after the cancel: it slept through the backoff", returned)
	}
	if got := c.cluster.Nodes[0].Calls(); got != 1 {
		t.Fatalf("%d attempts reached the server, want 1", got)
	}
}

// Server streams: a stream that fails before its first message is retried
// on another node and delivers every message once; one that fails after its
// first message is not retried.
func TestServerStreamRetriedOnlyBeforeFirstMessage(t *testing.T) {
	p := mustPolicy(t, retry.WithIdempotent("/"+echo.Service+"/*"))
	c := newClient(t, 2, `{"strategy":"round_robin"}`, p)
	c.cluster.Nodes[0].SetFault(echo.FailWith(codes.Unavailable))
	for i := range 10 {
		got, err := echo.ServerStream(context.Background(), c.cc, 5)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		want := []string{"node-1:0", "node-1:1", "node-1:2", "node-1:3", "node-1:4"}
		if !slices.Equal(got, want) {
			t.Fatalf("stream %d delivered %v, want %v", i, got, want)
		}
	}
	c.cluster.Nodes[0].SetFault(nil)
	for _, n := range c.cluster.Nodes {
		n.SetStreamFault(func(i int) error {
			if i == 1 {
				return status.Error(codes.Unavailable, "lost after the first message")
			}
			return nil
		})
		n.ResetCalls()
	}
	got, err := echo.ServerStream(context.Background(), c.cc, 5)
	if status.Code(err) != codes.Unavailable || len(got) != 1 {
		t.Fatalf("stream failing after its first message: got %v, %v; want 1 message then Unavailable", got, err)
	}
	if total := c.totalCalls(); total != 1 {
		t.Fatalf("the stream reached %d servers, want 1 (no retry after a message)", total)
	}
}

// A call not marked idempotent whose attempt reached the server is not
// retried; one whose attempt provably never left the client is.
func TestNonIdempotentRetriedOnlyWhenNotSent(t *testing.T) {
	p := mustPolicy(t)
	c := newClient(t, 2, `{"strategy":"round_robin"}`, p)
	c.cluster.Nodes[0].SetFault(echo.FailWith(codes.Unavailable))
	var failed int
	for range 20 {
		if _, err := call(context.Background(), c); err != nil {
			failed++
		}
	}
	if failed != 10 || c.cluster.Nodes[0].Calls() != 10 {
		t.Fatalf("%d of 20 calls failed, bad node saw %d: want the 10 that reached it failed, not retried", failed, c.cluster.Nodes[0].Calls())
	}
	// Plain API: NotSent marks an attempt that never reached the node.
	sel, _ := selector.New()
	_ = sel.Update([]selector.Node{{ID: "a", Addr: "127.0.0.1:1"}, {ID: "b", Addr: "127.0.0.1:2"}})
	var attempts int
	err := p.Do(context.Background(), sel, func(_ context.Context, n selector.Node) error {
		attempts++
		if attempts == 1 {
			return retry.NotSent(status.Error(codes.Unavailable, "no connection"))
		}
		return nil
	})
	if err != nil || attempts != 2 {
		t.Fatalf("NotSent attempt: err %v after %d attempts, want success on the second", err, attempts)
	}
}

// The error after the last attempt keeps its status; *Error lists every
// attempt; pushback and grpc-previous-rpc-attempts follow gRFC A6.
func TestErrorsPushbackAndHeaders(t *testing.T) {
	var d delays
	p := mustPolicy(t, retry.WithIdempotent(unary), retry.WithBudget(retry.Budget{Off: true}), retry.WithHooks(d.hook()))
	c := newClient(t, 3, `{"strategy":"round_robin"}`, p)
	var prev sync.Map
	for _, n := range c.cluster.Nodes {
		n.SetFault(func(ctx context.Context, _ string) error {
			md, _ := metadata.FromIncomingContext(ctx)
			prev.Store(strings.Join(md.Get("grpc-previous-rpc-attempts"), ","), true)
			_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", "7"))
			return status.Error(codes.Unavailable, "down for maintenance")
		})
	}
	_, err := call(context.Background(), c)
	var re *retry.Error
	if status.Code(err) != codes.Unavailable || !errors.As(err, &re) || !errors.Is(err, retry.ErrAttemptsExhausted) {
		t.Fatalf("error %v: want Unavailable, a *retry.Error and ErrAttemptsExhausted", err)
	}
	if len(re.Attempts) != 3 || re.Attempts[0].Node.ID == "" || re.Attempts[0].Node.ID == re.Attempts[1].Node.ID {
		t.Fatalf("attempts %+v: want 3 on distinct named nodes", re.Attempts)
	}
	if !strings.Contains(status.Convert(err).Message(), "down for maintenance") {
		t.Fatalf("status message %q lost the server's message", status.Convert(err).Message())
	}
	for _, v := range []string{"", "1", "2"} {
		if _, ok := prev.Load(v); !ok {
			t.Errorf("no attempt carried grpc-previous-rpc-attempts=%q", v)
		}
	}
	if m := d.max(); m != 7*time.Millisecond {
		t.Errorf("retry delay %v, want the server's pushback of 7 ms", m)
	}
	// A negative pushback stops retries.
	for _, n := range c.cluster.Nodes {
		n.SetFault(func(ctx context.Context, _ string) error {
			_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", "-1"))
			return status.Error(codes.Unavailable, "go away")
		})
		n.ResetCalls()
	}
	if _, err := call(context.Background(), c); status.Code(err) != codes.Unavailable || c.totalCalls() != 1 {
		t.Fatalf("negative pushback: %v after %d attempts, want 1 attempt", err, c.totalCalls())
	}
}

func TestBusinessErrorsAreNotRetried(t *testing.T) {
	p := mustPolicy(t, retry.WithIdempotent("*"))
	c := newClient(t, 3, `{}`, p)
	for _, n := range c.cluster.Nodes {
		n.SetFault(echo.FailWith(codes.NotFound))
	}
	_, err := call(context.Background(), c)
	if status.Code(err) != codes.NotFound || c.totalCalls() != 1 {
		t.Fatalf("NotFound: %v after %d attempts, want NotFound after 1", err, c.totalCalls())
	}
	var re *retry.Error
	if errors.As(err, &re) {
		t.Fatal("a single non-retryable attempt came back wrapped; want the error as it is")
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		opt  retry.Option
		want string
	}{
		{retry.WithMaxAttempts(0), "at least 1 attempt"},
		{retry.WithPerAttemptTimeout(-time.Second), "must not be negative"},
		{retry.WithFreshNodeDelay(-time.Millisecond), "must not be negative"},
		{retry.WithBackoff(retry.Backoff{Initial: -time.Second}), "Initial must not be negative"},
		{retry.WithBackoff(retry.Backoff{Initial: time.Second, Max: time.Millisecond}), "must not be below Initial"},
		{retry.WithBackoff(retry.Backoff{Multiplier: 0.5}), "Multiplier must be a finite number of at least 1, got 0.5"},
		{retry.WithBackoff(retry.Backoff{Multiplier: math.NaN()}), "Multiplier must be a finite number of at least 1, got NaN"},
		{retry.WithBackoff(retry.Backoff{Multiplier: math.Inf(1)}), "Multiplier must be a finite number of at least 1, got +Inf"},
		{retry.WithBackoff(retry.Backoff{Jitter: math.NaN()}), "Jitter must be in [0, 1), got NaN"},
		{retry.WithBackoff(retry.Backoff{Jitter: 1.5}), "Jitter must be in [0, 1)"},
		{retry.WithBudget(retry.Budget{Ratio: 1.5}), "Ratio must be in [0, 1], got 1.5"},
		{retry.WithBudget(retry.Budget{Ratio: -0.1}), "Ratio must be in [0, 1]"},
		{retry.WithBudget(retry.Budget{Ratio: 0.2, MinPerSecond: -1}), "MinPerSecond must not be negative"},
		{retry.WithRetryableCodes(codes.Canceled), "Canceled cannot be retryable"},
		{retry.WithRetryableCodes(codes.Code(99)), "cannot be retryable"},
		{retry.WithHedging(20*time.Millisecond, unary), "is not marked idempotent"},
		{retry.WithHedging(0, unary), "hedge delay must be positive"},
		{retry.WithIdempotent("Echo/Unary"), `method pattern "Echo/Unary"`},
		{retry.WithBackoff(retry.Backoff{Initial: time.Second, Func: func() backoff.BackOff { return &backoff.ZeroBackOff{} }}), "set Func or the exponential fields, not both"},
		{retry.WithBudget(retry.Budget{Off: true, Ratio: 0.5}), "Off with Ratio 0.5"},
	} {
		if _, err := retry.New(tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
	}
	if _, err := retry.New(retry.WithIdempotent("/"+echo.Service+"/*"), retry.WithHedging(time.Millisecond, unary)); err != nil {
		t.Errorf("hedging a method of an idempotent service: %v", err)
	}
	p := mustPolicy(t)
	c := newClient(t, 1, `{}`, p)
	if _, err := call(context.Background(), c, retry.MaxAttempts(0)); status.Code(err) != codes.InvalidArgument {
		t.Errorf("MaxAttempts(0) on a call: %v, want InvalidArgument", err)
	}
}

func TestEmptyServerStream(t *testing.T) {
	p := mustPolicy(t)
	c := newClient(t, 1, `{}`, p)
	got, err := echo.ServerStream(context.Background(), c.cc, 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty stream: %v, %v", got, err)
	}
}

// The plain API hedges too, and returns the winner's value.
func TestPlainCallHedgesAndReturnsWinnersValue(t *testing.T) {
	sel, err := selector.New(selector.WithStrategy(selector.RoundRobin))
	if err != nil {
		t.Fatal(err)
	}
	if err := sel.Update([]selector.Node{{ID: "slow", Addr: "127.0.0.1:1"}, {ID: "fast", Addr: "127.0.0.1:2"}}); err != nil {
		t.Fatal(err)
	}
	var hedges atomic.Int64
	p := mustPolicy(t, retry.WithIdempotent("/svc/*"), retry.WithHedging(10*time.Millisecond, "/svc/Get"),
		retry.WithHooks(retry.Hooks{OnHedge: func(context.Context, retry.RetryInfo) { hedges.Add(1) }}))
	var slowCanceled atomic.Bool
	v, err := retry.Call(context.Background(), p, sel, func(ctx context.Context, n selector.Node) (string, error) {
		if n.ID == "slow" {
			select {
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
				slowCanceled.Store(true)
				return "", ctx.Err()
			}
		}
		return "value from " + n.ID, nil
	}, retry.Method("/svc/Get"))
	if err != nil || v != "value from fast" {
		t.Fatalf("got %q, %v; want the fast node's value", v, err)
	}
	if hedges.Load() != 1 || !slowCanceled.Load() {
		t.Fatalf("hedges %d, slow attempt canceled %v: want one hedge and the slow attempt canceled before Call returned", hedges.Load(), slowCanceled.Load())
	}
}

// A hedged call that ends with an answer that is not retried fails with
// that answer, not with the cancellation of the hedge still running (whose
// attempt number is higher).
func TestHedgedCallFailsWithTheAnswerThatEndedIt(t *testing.T) {
	sel, err := selector.New(selector.WithStrategy(selector.RoundRobin))
	if err != nil {
		t.Fatal(err)
	}
	if err := sel.Update([]selector.Node{{ID: "first", Addr: "127.0.0.1:1"}, {ID: "hedge", Addr: "127.0.0.1:2"}}); err != nil {
		t.Fatal(err)
	}
	p := mustPolicy(t, retry.WithIdempotent("*"), retry.WithHedging(time.Millisecond, "*"))
	hedged := make(chan struct{})
	_, err = retry.Call(context.Background(), p, sel, func(ctx context.Context, n selector.Node) (string, error) {
		if n.ID == "hedge" {
			close(hedged)
			<-ctx.Done()
			return "", status.FromContextError(ctx.Err()).Err()
		}
		<-hedged // answer once the hedge is running
		return "", status.Error(codes.InvalidArgument, "no such account")
	})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "no such account") {
		t.Fatalf("%v, want the first attempt's InvalidArgument", err)
	}
}

// A server stream whose node never sends its first message is cut by the
// per-attempt timeout and retried on another node.
func TestServerStreamFirstMessageTimeout(t *testing.T) {
	p := mustPolicy(t, retry.WithIdempotent("*"), retry.WithPerAttemptTimeout(100*time.Millisecond))
	c := newClient(t, 2, `{"strategy":"round_robin"}`, p)
	c.cluster.Nodes[0].SetFault(echo.Hang())
	for i := range 4 {
		got, err := echo.ServerStream(context.Background(), c.cc, 3)
		if err != nil || len(got) != 3 {
			t.Fatalf("stream %d: %v, %v", i, got, err)
		}
	}
	if c.cluster.Nodes[0].Calls() == 0 {
		t.Fatal("the hanging node got no stream: the test tested nothing")
	}
}

// Bidi streams pass through the stream interceptor unchanged.
func TestBidiStreamPassesThrough(t *testing.T) {
	p := mustPolicy(t)
	c := newClient(t, 1, `{}`, p)
	desc := echo.StreamDescs()[1]
	s, err := c.cc.NewStream(context.Background(), &desc, echo.BidiMethod)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"x", "y"} {
		if err := s.SendMsg(wrapperspb.String(m)); err != nil {
			t.Fatal(err)
		}
		got := new(wrapperspb.StringValue)
		if err := s.RecvMsg(got); err != nil || got.GetValue() != "node-0:"+m {
			t.Fatalf("echo of %q: %q, %v", m, got.GetValue(), err)
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := s.RecvMsg(new(wrapperspb.StringValue)); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
}
