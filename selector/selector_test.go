package selector_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/outcome"
	"github.com/rpcguard/rpcguard/selector"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// nodes returns n valid nodes n0..n(n-1) on 127.0.0.1 ports 10000+.
func nodes(n int) []selector.Node {
	out := make([]selector.Node, n)
	for i := range out {
		out[i] = selector.Node{ID: "n" + strconv.Itoa(i), Addr: "127.0.0.1:" + strconv.Itoa(10000+i)}
	}
	return out
}

func newSelector(t testing.TB, ns []selector.Node, opts ...selector.Option) *selector.Selector {
	t.Helper()
	s, err := selector.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ns); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundRobinPersistsAcrossCallsAndGoroutines(t *testing.T) {
	s := newSelector(t, nodes(3), selector.WithStrategy(selector.RoundRobin))
	var mu sync.Mutex
	count := map[string]int{}
	testcluster.InParallel(t, 6, 500, func() error {
		p, err := s.Pick(selector.NewRecord(context.Background()))
		if err != nil {
			return err
		}
		p.Done(nil, true)
		mu.Lock()
		count[p.Node.ID]++
		mu.Unlock()
		return nil
	})
	for _, n := range nodes(3) {
		if count[n.ID] != 1000 {
			t.Errorf("round robin over 3,000 picks gave %s %d picks, want exactly 1,000 (all: %v)", n.ID, count[n.ID], count)
		}
	}
	// One goroutine, consecutive calls: the position carries over.
	a, _ := s.Pick(context.Background())
	b, _ := s.Pick(context.Background())
	a.Done(nil, true)
	b.Done(nil, true)
	if a.Node.ID == b.Node.ID {
		t.Errorf("two consecutive calls both got %s: round robin restarted", a.Node.ID)
	}
}

func TestCallRecordAvoidsTriedNodes(t *testing.T) {
	for _, st := range []selector.Strategy{selector.Random, selector.RoundRobin, selector.PowerOfTwo} {
		t.Run(string(st), func(t *testing.T) {
			s := newSelector(t, nodes(4), selector.WithStrategy(st))
			for range 200 {
				ctx := selector.NewRecord(context.Background())
				seen := map[string]bool{}
				for range 4 {
					p, err := s.Pick(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if seen[p.Node.ID] {
						t.Fatalf("node %s picked twice in one call", p.Node.ID)
					}
					seen[p.Node.ID] = true
					p.Done(status.Error(codes.Unavailable, "down"), true)
				}
				_, err := s.Pick(ctx)
				if !errors.Is(err, selector.ErrAllTried) || status.Code(err) != codes.Unavailable {
					t.Fatalf("fifth pick: got %v (code %v), want ErrAllTried with code Unavailable", err, status.Code(err))
				}
				if got := len(selector.RecordFrom(ctx).Tried()); got != 4 {
					t.Fatalf("record holds %d nodes, want 4", got)
				}
			}
		})
	}
}

func TestReuseTriedTakesLeastRecentlyFailed(t *testing.T) {
	s := newSelector(t, nodes(3), selector.WithReuseTried())
	ctx := selector.NewRecord(context.Background())
	var order []string
	for range 3 {
		p, err := s.Pick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, p.Node.ID)
		time.Sleep(time.Millisecond) // distinct failure times on a coarse clock
		p.Done(status.Error(codes.Unavailable, "down"), true)
	}
	for i := range 3 {
		p, err := s.Pick(ctx)
		if err != nil {
			t.Fatalf("reuse pick %d: %v", i, err)
		}
		if p.Node.ID != order[i] {
			t.Fatalf("reuse pick %d got %s, want the least recently failed %s (failure order %v)", i, p.Node.ID, order[i], order)
		}
		time.Sleep(time.Millisecond)
		p.Done(status.Error(codes.Unavailable, "down"), true)
	}
}

func TestRecordsOfDifferentSelectorsDoNotMix(t *testing.T) {
	a := newSelector(t, nodes(1))
	b := newSelector(t, nodes(1)) // same IDs, another service
	ctx := selector.NewRecord(context.Background())
	p, err := a.Pick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Done(nil, true)
	if _, err := b.Pick(ctx); err != nil {
		t.Fatalf("a pick on selector b was blocked by a's record: %v", err)
	}
}

func TestNoNodes(t *testing.T) {
	s, err := selector.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pick(context.Background()); !errors.Is(err, selector.ErrNoNodes) {
		t.Fatalf("pick on an empty selector: %v, want ErrNoNodes", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s = newSelector(t, nodes(2))
	if _, err := s.Pick(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("pick with a canceled ctx: %v, want context.Canceled", err)
	}
}

func TestMetadataFilter(t *testing.T) {
	ns := nodes(4)
	for i := range ns {
		ns[i].Metadata = map[string]string{"version": "v" + strconv.Itoa(i%2+1)}
	}
	s := newSelector(t, ns, selector.WithFilter(func(n selector.Node) bool { return n.Metadata["version"] == "v2" }))
	for range 100 {
		p, err := s.Pick(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		p.Done(nil, true)
		if v := p.Node.Metadata["version"]; v != "v2" {
			t.Fatalf("filter on version v2 let through %s (version %q)", p.Node.ID, v)
		}
	}
	if got := len(s.Nodes()); got != 2 {
		t.Fatalf("filtered node set has %d nodes, want 2", got)
	}
}

// Ejection on a fake clock (testing/synctest): a node that fails 5 times
// in a row is out for exactly BaseTime, back at once after it, and out for
// twice as long the second time.
func TestEjectionAndReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ejected, returned atomic.Int32
		var ejectedFor atomic.Int64
		e := selector.Ejection{ConsecutiveFailures: 5, BaseTime: 30 * time.Second, MaxTime: 300 * time.Second, MaxPercent: 50}
		s := newSelector(t, nodes(3), selector.WithEjection(e), selector.WithHooks(selector.Hooks{
			OnEject:  func(n selector.Node, d time.Duration) { ejected.Add(1); ejectedFor.Store(int64(d)) },
			OnReturn: func(selector.Node) { returned.Add(1) },
		}))
		pickDone := func(failOn string) string {
			p, err := s.Pick(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if p.Node.ID == failOn {
				p.Done(status.Error(codes.Unavailable, "down"), true)
			} else {
				p.Done(nil, true)
			}
			return p.Node.ID
		}
		eject := func(n int32) {
			for i := 0; ejected.Load() < n; i++ {
				if i > 100 {
					t.Fatal("n1 failing every pick was never ejected")
				}
				pickDone("n1")
			}
		}
		eject(1)
		if d := time.Duration(ejectedFor.Load()); d != e.BaseTime {
			t.Fatalf("first ejection lasts %v, want BaseTime %v", d, e.BaseTime)
		}
		time.Sleep(e.BaseTime - time.Millisecond)
		for range 30 {
			if pickDone("") == "n1" {
				t.Fatal("the ejected node was picked before its time was up")
			}
		}
		time.Sleep(time.Millisecond)
		seen := false
		for range 3 {
			seen = pickDone("") == "n1" || seen
		}
		if !seen || returned.Load() != 1 {
			t.Fatalf("at BaseTime: n1 picked %v, OnReturn ran %d times; want a pick in the round and 1", seen, returned.Load())
		}
		eject(2)
		if d := time.Duration(ejectedFor.Load()); d != 2*e.BaseTime {
			t.Fatalf("second ejection lasts %v, want 2 × BaseTime", d)
		}
	})
}

func TestEjectionNeverPassesMaxPercent(t *testing.T) {
	var ejected atomic.Int32
	e := selector.Ejection{ConsecutiveFailures: 2, BaseTime: time.Minute, MaxTime: time.Hour, MaxPercent: 50}
	s := newSelector(t, nodes(4), selector.WithEjection(e), selector.WithHooks(selector.Hooks{
		OnEject: func(selector.Node, time.Duration) { ejected.Add(1) },
	}))
	// Three of four nodes fail, beside one that serves: at most 2 of 4 may
	// be out.
	for range 200 {
		p, err := s.Pick(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var err2 error
		if p.Node.ID != "n0" {
			err2 = status.Error(codes.Unavailable, "down")
		}
		p.Done(err2, true)
	}
	if got := ejected.Load(); got != 2 {
		t.Fatalf("%d of 4 nodes ejected with MaxPercent 50, want 2", got)
	}
}

// A brownout is not an outlier: when every node fails alike (60% of its
// attempts, each), none is ejected, however long it lasts; when every node
// fails every attempt (an outage), ejecting one would help no call either.
func TestBrownoutEjectsNoNode(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2)) // the same attempts every run
	for _, tc := range []struct {
		name string
		fail func(i int) bool
	}{
		{"brownout 60%", func(i int) bool { return rng.IntN(10) < 6 }},
		{"brownout 30%", func(i int) bool { return rng.IntN(10) < 3 }},
		{"outage", func(int) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ejected atomic.Int32
			s := newSelector(t, nodes(3), selector.WithEjection(selector.DefaultEjection()), selector.WithHooks(selector.Hooks{
				OnEject: func(selector.Node, time.Duration) { ejected.Add(1) },
			}))
			for i := range 20000 {
				p, err := s.Pick(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				var err2 error
				if tc.fail(i) {
					err2 = status.Error(codes.Unavailable, "down")
				}
				p.Done(err2, true)
			}
			if n := ejected.Load(); n != 0 {
				t.Fatalf("%d ejections in 20,000 attempts, want none", n)
			}
		})
	}
}

func TestClassification(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want outcome.Outcome
	}{
		{nil, outcome.Success},
		{status.Error(codes.NotFound, "x"), outcome.Success},
		{status.Error(codes.InvalidArgument, "x"), outcome.Success},
		{status.Error(codes.Canceled, "x"), outcome.Neutral},
		{context.Canceled, outcome.Neutral},
		{fmt.Errorf("wrapped: %w", context.Canceled), outcome.Neutral},
		{status.Error(codes.Unavailable, "x"), outcome.Failure},
		{status.Error(codes.Internal, "x"), outcome.Failure},
		{status.Error(codes.DeadlineExceeded, "x"), outcome.Failure},
		{context.DeadlineExceeded, outcome.Failure},
		{errors.New("connection refused"), outcome.Failure},
	} {
		if got := outcome.Default(tc.err); got != tc.want {
			t.Errorf("DefaultClassifier(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBusinessErrorsDoNotEject(t *testing.T) {
	var ejected atomic.Int32
	s := newSelector(t, nodes(2), selector.WithEjection(selector.DefaultEjection()), selector.WithHooks(selector.Hooks{
		OnEject: func(selector.Node, time.Duration) { ejected.Add(1) },
	}))
	for range 100 {
		p, _ := s.Pick(context.Background())
		p.Done(status.Error(codes.NotFound, "no such thing"), true)
		p, _ = s.Pick(context.Background())
		p.Done(context.Canceled, true)
	}
	if ejected.Load() != 0 {
		t.Fatal("NotFound and Canceled answers ejected a node")
	}
}

// removalCheck runs callers while the node set changes, and counts the calls
// that returned a node removed by an update in effect before they started.
// Tests must never bring a removed node back.
type removalCheck struct {
	generation atomic.Int64
	removedIn  sync.Map // node ID -> generation whose update removed it
	calls, bad atomic.Int64
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// startCallers runs n goroutines that call until stop; call returns the ID
// of the node that served.
func startCallers(t testing.TB, n int, call func() (string, error)) *removalCheck {
	r := &removalCheck{}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	for range n {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for ctx.Err() == nil {
				g := r.generation.Load() // before the call starts
				id, err := call()
				if err != nil {
					t.Error(err)
					return
				}
				r.calls.Add(1)
				if rg, ok := r.removedIn.Load(id); ok && rg.(int64) <= g {
					r.bad.Add(1)
				}
				runtime.Gosched()
			}
		}()
	}
	return r
}

// removed says that the update of generation g, now in effect, removed ids.
func (r *removalCheck) removed(g int64, ids ...string) {
	for _, id := range ids {
		r.removedIn.Store(id, g)
	}
	r.generation.Store(g)
}

// waitCalls waits until n more calls have completed.
func (r *removalCheck) waitCalls(t testing.TB, n int64) {
	t.Helper()
	target := r.calls.Load() + n
	testcluster.WaitFor(t, 10*time.Second, "calls on the current node set", func() bool { return r.calls.Load() >= target })
}

// stop ends the callers and fails t if any call went to a removed node.
func (r *removalCheck) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	r.wg.Wait()
	if n := r.bad.Load(); n != 0 {
		t.Fatalf("%d of %d calls went to a node removed before they started", n, r.calls.Load())
	}
}

func TestUpdateWhilePicking(t *testing.T) {
	// Every update keeps three stable nodes, drops the previous generation's
	// three and adds three new ones.
	stable := nodes(3)
	gen := func(g int64) []selector.Node {
		out := append([]selector.Node(nil), stable...)
		for k := range int64(3) {
			out = append(out, selector.Node{ID: fmt.Sprintf("g%d-%d", g, k), Addr: fmt.Sprintf("127.0.0.1:%d", 20000+3*g+k)})
		}
		return out
	}
	s := newSelector(t, gen(0), selector.WithStrategy(selector.PowerOfTwo))
	r := startCallers(t, 8, func() (string, error) {
		p, err := s.Pick(selector.NewRecord(context.Background()))
		p.Done(nil, true)
		return p.Node.ID, err
	})
	for g := int64(1); g <= 300; g++ {
		if err := s.Update(gen(g)); err != nil {
			t.Fatal(err)
		}
		var gone []string
		for _, n := range gen(g - 1)[3:] {
			gone = append(gone, n.ID)
		}
		r.removed(g, gone...)
		r.waitCalls(t, 20)
	}
	r.stop(t)
}

func TestBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		nodes []selector.Node
		opts  []selector.Option
		want  string
	}{
		"empty ID":          {nodes: []selector.Node{{Addr: "127.0.0.1:1"}}, want: "empty ID"},
		"duplicate ID":      {nodes: []selector.Node{{ID: "a", Addr: "127.0.0.1:1"}, {ID: "a", Addr: "127.0.0.1:2"}}, want: `duplicate node ID "a"`},
		"duplicate addr":    {nodes: []selector.Node{{ID: "a", Addr: "127.0.0.1:1"}, {ID: "b", Addr: "127.0.0.1:1"}}, want: "share the address"},
		"no port":           {nodes: []selector.Node{{ID: "a", Addr: "127.0.0.1"}}, want: "does not parse"},
		"port not numeric":  {nodes: []selector.Node{{ID: "a", Addr: "127.0.0.1:http"}}, want: "not a number"},
		"port too big":      {nodes: []selector.Node{{ID: "a", Addr: "127.0.0.1:70000"}}, want: "not a number in 1..65535"},
		"no host":           {nodes: []selector.Node{{ID: "a", Addr: ":80"}}, want: "no host"},
		"unknown strategy":  {opts: []selector.Option{selector.WithStrategy("fastest")}, want: `unknown strategy "fastest"`},
		"nil filter":        {opts: []selector.Option{selector.WithFilter(nil)}, want: "nil filter"},
		"nil classifier":    {opts: []selector.Option{selector.WithClassifier(nil)}, want: "nil classifier"},
		"ejection neg base": {opts: []selector.Option{selector.WithEjection(selector.Ejection{ConsecutiveFailures: 5, BaseTime: -time.Second, MaxTime: time.Second, MaxPercent: 10})}, want: "BaseTime must be positive"},
		"ejection 0 base":   {opts: []selector.Option{selector.WithEjection(selector.Ejection{ConsecutiveFailures: 5, MaxTime: time.Second, MaxPercent: 10})}, want: "MaxTime (1s) must not be below BaseTime (30s)"},
		"ejection percent":  {opts: []selector.Option{selector.WithEjection(selector.Ejection{ConsecutiveFailures: 5, BaseTime: time.Second, MaxTime: time.Second, MaxPercent: 101})}, want: "MaxPercent must be in 1..100, got 101"},
		"host with space":   {nodes: []selector.Node{{ID: "a", Addr: "my host:80"}}, want: `host "my host" is neither an IP address nor a DNS name`},
		"host with NUL":     {nodes: []selector.Node{{ID: "a", Addr: "host\x00:80"}}, want: "is neither an IP address nor a DNS name"},
		"addr case":         {nodes: []selector.Node{{ID: "a", Addr: "Host:80"}, {ID: "b", Addr: "host:80"}}, want: `nodes "a" and "b" share the address "host:80"`},
		"ipv6 forms":        {nodes: []selector.Node{{ID: "a", Addr: "[::1]:80"}, {ID: "b", Addr: "[0:0::1]:80"}}, want: `share the address`},
		"ejection max<base": {opts: []selector.Option{selector.WithEjection(selector.Ejection{ConsecutiveFailures: 5, BaseTime: time.Minute, MaxTime: time.Second, MaxPercent: 10})}, want: "must not be below BaseTime"},
		"ejection failures": {opts: []selector.Option{selector.WithEjection(selector.Ejection{ConsecutiveFailures: -1, BaseTime: time.Second, MaxTime: time.Second})}, want: "ConsecutiveFailures must be at least 1"},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := selector.New(tc.opts...)
			if err == nil {
				err = s.Update(tc.nodes)
				if err == nil && len(s.Nodes()) != len(tc.nodes) {
					t.Fatal("Update changed the set")
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := selector.NewStatic(); err == nil || !strings.Contains(err.Error(), "at least one node") {
		t.Fatalf("NewStatic(): %v, want an error about no nodes", err)
	}
}

func TestZeroPickedDoneIsHarmless(t *testing.T) {
	var p selector.Picked
	p.Done(nil, true) // a Picked from a failed pick: nothing to report
}

func TestAttemptRecord(t *testing.T) {
	s := newSelector(t, nodes(3))
	ctx := selector.NewRecord(context.Background())
	c := selector.RecordFrom(ctx)
	if _, known := c.Untried(); known {
		t.Fatal("Untried known before any pick")
	}
	c.StartAttempt(1, 0)
	p, err := s.Pick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := selector.AttemptFrom(ctx)
	if !ok || a.Number != 1 || !a.Picked || a.Node.ID != p.Node.ID || a.Done {
		t.Fatalf("attempt after pick: %+v", a)
	}
	p.Done(status.Error(codes.Unavailable, "x"), true)
	if a, _ = selector.AttemptFrom(ctx); !a.Done || !a.Sent {
		t.Fatalf("attempt after Done: %+v, want Done and (for the plain API) Sent", a)
	}
	if n, known := c.Untried(); !known || n != 2 {
		t.Fatalf("Untried = %d, %v; want 2, true", n, known)
	}
	// A hedge has its own Attempt but shares the record.
	hctx := selector.WithAttempt(ctx, 2, 20*time.Millisecond, true)
	hp, err := s.Pick(hctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hp.Done(nil, true)
	if hp.Node.ID == p.Node.ID {
		t.Fatal("the hedge picked the node the call already tried")
	}
	ha, _ := selector.AttemptFrom(hctx)
	if !ha.Hedge || ha.Number != 2 || ha.Node.ID != hp.Node.ID {
		t.Fatalf("hedge attempt: %+v", ha)
	}
	if a, _ = selector.AttemptFrom(ctx); a.Node.ID != p.Node.ID {
		t.Fatalf("the hedge's pick overwrote the first attempt: %+v", a)
	}
	if n, _ := c.Untried(); n != 1 {
		t.Fatalf("Untried = %d after two picks of three nodes, want 1", n)
	}
}

// triedIDs returns the IDs of the nodes ctx's record tried, in order.
func triedIDs(ctx context.Context) []string {
	var ids []string
	for _, n := range selector.RecordFrom(ctx).Tried() {
		ids = append(ids, n.ID)
	}
	return ids
}

// Power of two choices on a fake clock: a slow node (200 times the other's
// latency) gets a pick now and then once its faded average comes near the
// other's (about every 2 s, decayTau) while it is slow, and once it
// recovered a fresh sample wins it back its share within 5 s.
func TestPowerOfTwoWinsBackARecoveredNodeOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSelector(t, nodes(2), selector.WithStrategy(selector.PowerOfTwo))
		latency := map[string]time.Duration{"n0": 200 * time.Millisecond, "n1": time.Millisecond}
		window := func(d time.Duration) (n0, all int) {
			for end := time.Now().Add(d); time.Now().Before(end); all++ {
				p, err := s.Pick(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(latency[p.Node.ID])
				p.Done(nil, true)
				if p.Node.ID == "n0" {
					n0++
				}
			}
			return n0, all
		}
		window(time.Second) // both sampled
		if n0, all := window(20 * time.Second); n0 > 13 {
			t.Fatalf("the slow node got %d of %d picks in 20 s, want at most one per 1.5 s", n0, all)
		}
		latency["n0"] = time.Millisecond
		window(5 * time.Second)
		if n0, all := window(5 * time.Second); n0*4 < all {
			t.Fatalf("5 to 10 s after it recovered the node got %d of %d picks, want at least a quarter", n0, all)
		}
	})
}

// A node whose attempt failed unsent (it refused the connection) is out of
// the picks for 1 s, as gRPC keeps a subchannel that cannot connect out of
// its picker, not counted as ejected; back after it; and a call with no
// other node left still goes to it rather than fail.
func TestUnreachableNodeSkippedForABackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSelector(t, nodes(3), selector.WithStrategy(selector.RoundRobin))
		refuse := func(id string) {
			for {
				p, err := s.Pick(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if p.Node.ID == id {
					p.Done(status.Error(codes.Unavailable, "connection refused"), false)
					return
				}
				p.Done(nil, true)
			}
		}
		picked := func(n int) map[string]int {
			got := map[string]int{}
			for range n {
				p, err := s.Pick(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				got[p.Node.ID]++
				p.Done(nil, true)
			}
			return got
		}
		refuse("n1")
		if got := picked(30); got["n1"] != 0 || got["n0"] == 0 || got["n2"] == 0 {
			t.Fatalf("picks right after n1 refused: %v, want none on n1", got)
		}
		time.Sleep(1100 * time.Millisecond)
		if got := picked(30); got["n1"] == 0 {
			t.Fatalf("picks 1.1 s after n1 refused: %v, want n1 back", got)
		}
		for _, id := range []string{"n0", "n1", "n2"} {
			refuse(id)
		}
		if got := picked(30); len(got) == 0 {
			t.Fatal("no pick with every node unreachable")
		}
	})
}
