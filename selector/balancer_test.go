package selector_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/selector"
)

// harness is a real cluster, a Static source of its nodes and a client
// whose balancer is a freshly registered rpcguard selector with hooks.
type harness struct {
	t       *testing.T
	cluster *testcluster.Cluster
	src     *selector.Static
	cc      *grpc.ClientConn

	mu      sync.Mutex
	inUse   []selector.Node // the node set of the installed picker
	ejects  atomic.Int32
	returns atomic.Int32
}

// newHarness starts n nodes and a client. lbJSON is the balancer's config;
// extraSC is appended to the service config (e.g. a healthCheckConfig).
func newHarness(t *testing.T, n int, lbJSON, extraSC string, opts ...grpc.DialOption) *harness {
	t.Helper()
	return newHarnessMeta(t, n, nil, n, lbJSON, extraSC, opts...)
}

// newHarnessMeta is newHarness with node metadata (meta(i) for node i) and
// the number of nodes the balancer keeps after its filters.
func newHarnessMeta(t *testing.T, n int, meta func(i int) map[string]string, inUse int, lbJSON, extraSC string, opts ...grpc.DialOption) *harness {
	t.Helper()
	h := &harness{t: t, cluster: testcluster.Start(t, n)}
	ns := toNodes(h.cluster.Nodes)
	for i := range ns {
		if meta != nil {
			ns[i].Metadata = meta(i)
		}
	}
	var err error
	if h.src, err = selector.NewStatic(ns...); err != nil {
		t.Fatal(err)
	}
	hooks := selector.WithHooks(selector.Hooks{
		OnEject:  func(selector.Node, time.Duration) { h.ejects.Add(1) },
		OnReturn: func(selector.Node) { h.returns.Add(1) },
		OnUpdate: func(ns []selector.Node) {
			h.mu.Lock()
			h.inUse = ns
			h.mu.Unlock()
		},
	})
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:%s}]%s}`, selector.BalancerName, lbJSON, extraSC)
	h.cc = testcluster.Dial(t, "rpcguard:///echo", append([]grpc.DialOption{
		testcluster.Resolver(t, h.src, hooks),
		grpc.WithDefaultServiceConfig(sc),
	}, opts...)...)
	h.cc.Connect()
	h.waitInUse(inUse)
	return h
}

func toNodes(ns []*echo.Server) []selector.Node {
	out := make([]selector.Node, len(ns))
	for i, n := range ns {
		out[i] = selector.Node{ID: n.ID, Addr: n.Addr}
	}
	return out
}

func (h *harness) nodesInUse() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]string, len(h.inUse))
	for i, n := range h.inUse {
		ids[i] = n.ID
	}
	slices.Sort(ids)
	return ids
}

// waitInUse waits until the installed picker has n nodes.
func (h *harness) waitInUse(n int) {
	h.t.Helper()
	testcluster.WaitFor(h.t, 10*time.Second, fmt.Sprintf("a picker with %d nodes", n), func() bool { return len(h.nodesInUse()) == n })
}

func (h *harness) call(ctx context.Context, opts ...grpc.CallOption) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return echo.Unary(ctx, h.cc, opts...)
}

func TestGRPCRoundRobinSpreadsEvenly(t *testing.T) {
	h := newHarness(t, 3, `{"strategy":"round_robin"}`, "")
	testcluster.InParallel(t, 6, 500, func() error { _, err := h.call(context.Background()); return err })
	for i, c := range h.cluster.Calls() {
		if c < 980 || c > 1020 {
			t.Errorf("node-%d served %d of 3,000 calls, want 1,000 ± 2%% (all: %v)", i, c, h.cluster.Calls())
		}
	}
}

func TestGRPCPowerOfTwoShunsSlowNode(t *testing.T) {
	h := newHarness(t, 3, `{"strategy":"p2c"}`, "")
	for i, n := range h.cluster.Nodes {
		d := 2 * time.Millisecond
		if i == 2 {
			d = 20 * time.Millisecond // 10× slower
		}
		n.SetFault(echo.Delay(d))
	}
	testcluster.InParallel(t, 8, 375, func() error { _, err := h.call(context.Background()); return err })
	calls := h.cluster.Calls()
	t.Logf("calls per node (node-2 is 10× slower): %v", calls)
	if calls[2] > 300 {
		t.Errorf("the slow node served %d of 3,000 calls, want at most 10%% (300)", calls[2])
	}
}

func TestGRPCNeverTheSameNodeTwiceInACall(t *testing.T) {
	h := newHarness(t, 3, `{"strategy":"random"}`, "")
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 250 {
				ctx := selector.NewRecord(context.Background())
				seen := map[string]bool{}
				for a := range 3 {
					id, err := h.call(ctx)
					if err != nil {
						t.Errorf("attempt %d: %v", a, err)
						return
					}
					if seen[id] {
						t.Errorf("attempt %d of one call went to %s again (tried: %v)", a, id, triedIDs(ctx))
						return
					}
					seen[id] = true
				}
				_, err := h.call(ctx)
				if !errors.Is(err, selector.ErrAllTried) || status.Code(err) != codes.Unavailable {
					t.Errorf("fourth attempt: %v (code %v), want ErrAllTried, Unavailable", err, status.Code(err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := h.cluster.Calls(); got[0]+got[1]+got[2] != 3000 {
		t.Fatalf("servers saw %v calls, want 3,000 in all: an ErrAllTried attempt reached a server", got)
	}
}

func TestGRPCEjectsFailingNodeUntilItsTimeIsUp(t *testing.T) {
	const base = 300 * time.Millisecond
	h := newHarness(t, 3, `{"ejection":{"consecutiveFailures":5,"baseTime":"300ms"}}`, "")
	bad := h.cluster.Nodes[1]
	bad.SetFault(echo.FailWith(codes.Unavailable))
	var ejectedAt time.Time // no later than the ejection
	for h.ejects.Load() == 0 {
		ejectedAt = time.Now()
		_, _ = h.call(context.Background())
	}
	if got := bad.Calls(); got != 5 {
		t.Fatalf("node ejected after %d calls, want 5 consecutive failures", got)
	}
	for h.returns.Load() == 0 {
		if _, err := h.call(context.Background()); err != nil && h.returns.Load() == 0 {
			t.Fatalf("a call failed while the bad node was out: %v", err)
		}
		if h.returns.Load() == 0 && bad.Calls() != 5 {
			t.Fatal("the ejected node got a call before its ejection time was up")
		}
	}
	if d := time.Since(ejectedAt); d < base {
		t.Fatalf("node back after %v, before its ejection time %v", d, base)
	}
	testcluster.WaitFor(t, 5*time.Second, "the returned node to get calls again", func() bool {
		_, _ = h.call(context.Background())
		return bad.Calls() > 5
	})
}

func TestGRPCEjectsNoMoreThanMaxPercent(t *testing.T) {
	h := newHarness(t, 4, `{"ejection":{"consecutiveFailures":3,"baseTime":"1m","maxPercent":50}}`, "")
	for _, n := range h.cluster.Nodes[:3] {
		n.SetFault(echo.FailWith(codes.Unavailable))
	}
	// Most peers of a failing node fail too (their mean failure rate is
	// 2/3): a run of failures proves it an outlier only after about 35.
	for i := 0; h.ejects.Load() < 2 && i < 1000; i++ {
		_, _ = h.call(context.Background())
	}
	for range 100 {
		_, _ = h.call(context.Background())
	}
	if got := h.ejects.Load(); got != 2 {
		t.Fatalf("%d of 4 nodes ejected with maxPercent 50, want 2", got)
	}
	before := h.cluster.Calls()
	for range 30 {
		_, _ = h.call(context.Background())
	}
	after := h.cluster.Calls()
	served := 0
	for i := range 3 {
		if after[i] > before[i] {
			served++
		}
	}
	if served != 1 {
		t.Fatalf("%d failing nodes still get calls (%v → %v), want exactly 1 (the one not ejected)", served, before, after)
	}
}

func TestGRPCNodeSetChangesWhileCalling(t *testing.T) {
	h := newHarness(t, 6, `{"strategy":"round_robin"}`, "")
	all := toNodes(h.cluster.Nodes)
	// Generations: {0,1,2,3} → {0,1,2,4} → {0,1,2,5}; a removed node never returns.
	sets := [][]selector.Node{append(all[:3:3], all[3]), append(all[:3:3], all[4]), append(all[:3:3], all[5])}
	if err := h.src.Update(sets[0]...); err != nil {
		t.Fatal(err)
	}
	h.waitInUse(4)
	r := startCallers(t, 8, func() (string, error) { return h.call(context.Background()) })
	for g := 1; g < len(sets); g++ {
		r.waitCalls(t, 200)
		if err := h.src.Update(sets[g]...); err != nil {
			t.Fatal(err)
		}
		gone := sets[g-1][3].ID
		testcluster.WaitFor(t, 10*time.Second, "a picker without "+gone, func() bool {
			in := h.nodesInUse()
			return len(in) == 4 && !slices.Contains(in, gone)
		})
		r.removed(int64(g), gone)
	}
	r.waitCalls(t, 200)
	r.stop(t)
}

func TestGRPCSkipsDeadNode(t *testing.T) {
	h := newHarness(t, 2, `{}`, "")
	dead := selector.Node{ID: "dead", Addr: testcluster.DeadAddr(t)}
	if err := h.src.Update(append(toNodes(h.cluster.Nodes), dead)...); err != nil {
		t.Fatal(err)
	}
	for range 300 {
		if _, err := h.call(context.Background()); err != nil {
			t.Fatalf("a call failed with a dead node in the set: %v", err)
		}
	}
}

func TestGRPCHonoursHealthChecking(t *testing.T) {
	h := newHarness(t, 3, `{}`, `,"healthCheckConfig":{"serviceName":"rpcguard.test.Echo"}`)
	sick := h.cluster.Nodes[1]
	sick.SetServing(false)
	h.waitInUse(2)
	if slices.Contains(h.nodesInUse(), sick.ID) {
		t.Fatal("the NOT_SERVING node is still in the picker")
	}
	before := sick.Calls()
	for range 100 {
		if _, err := h.call(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if sick.Calls() != before {
		t.Fatal("a NOT_SERVING node received calls")
	}
	sick.SetServing(true)
	h.waitInUse(3)
}

func TestGRPCBuiltinRetryAvoidsTriedNodes(t *testing.T) {
	retry := `,"methodConfig":[{"name":[{"service":"rpcguard.test.Echo"}],"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.001s","maxBackoff":"0.001s","backoffMultiplier":1,"retryableStatusCodes":["UNAVAILABLE"]}}]`
	h := newHarness(t, 3, `{"strategy":"random"}`, retry, grpc.WithUnaryInterceptor(selector.UnaryClientInterceptor()))
	bad := h.cluster.Nodes[0]
	bad.SetFault(echo.FailWith(codes.Unavailable))
	for i := range 300 {
		ctx := selector.NewRecord(context.Background())
		id, err := h.call(ctx)
		if err != nil {
			t.Fatalf("call %d failed: %v", i, err)
		}
		tried := triedIDs(ctx)
		if len(tried) > 2 || tried[len(tried)-1] != id || (len(tried) == 2 && tried[0] != bad.ID) {
			t.Fatalf("call %d tried %v and was answered by %s: want the bad node at most once, then one healthy node", i, tried, id)
		}
	}
	// Without a record of its own, the interceptor gives each call one.
	for range 100 {
		if _, err := h.call(context.Background()); err != nil {
			t.Fatalf("call through the interceptor failed: %v", err)
		}
	}
}

func TestGRPCBadServiceConfig(t *testing.T) {
	src, err := selector.NewStatic(selector.Node{ID: "a", Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ cfg, want string }{
		{`{"strategy":"fastest"}`, `unknown strategy "fastest"`},
		{`{"strategy":3}`, "cannot unmarshal"},
		{`{"stratgy":"random"}`, `unknown field "stratgy"`},
		{`{"ejection":{"baseTime":"-1s"}}`, "ejection.baseTime must be a positive duration"},
		{`{"ejection":{"baseTime":"soon"}}`, "ejection.baseTime must be a positive duration"},
		{`{"ejection":{"consecutiveFailures":0}}`, "consecutiveFailures must be at least 1"},
		{`{"ejection":{"maxPercent":150}}`, "ejection.maxPercent must be in 1..100, got 150"},
		{`{"ejection":{"maxPercent":0}}`, "ejection.maxPercent must be in 1..100, got 0"},
		{`{"ejection":null}`, "ejection: null is not a setting"},
		{`{"ejection":{"maxPercnt":10}}`, `unknown field "maxPercnt"`},
		{`{"ejection":{"baseTime":"10m","maxTime":"1m"}}`, "must not be below BaseTime"},
	} {
		sc := fmt.Sprintf(`{"loadBalancingConfig":[{"rpcguard_selector":%s}]}`, tc.cfg)
		cc, err := grpc.NewClient("rpcguard:///echo", testcluster.Resolver(t, src),
			grpc.WithDefaultServiceConfig(sc), grpc.WithTransportCredentials(insecureCreds()))
		if err == nil {
			_ = cc.Close()
			t.Errorf("config %s accepted, want an error containing %q", tc.cfg, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %s: error %q does not contain %q", tc.cfg, err, tc.want)
		}
	}
}

// badSource serves a fixed node set without validating it: a stand-in for a
// registry that returns malformed entries.
type badSource struct{ nodes []selector.Node }

func (s badSource) Watch(ctx context.Context, _ string) (selector.Watcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	return &onceWatcher{ctx: ctx, cancel: cancel, nodes: s.nodes}, nil
}

type onceWatcher struct {
	ctx    context.Context
	cancel context.CancelFunc
	nodes  []selector.Node
	sent   bool
}

func (w *onceWatcher) Next() ([]selector.Node, error) {
	if !w.sent {
		w.sent = true
		return w.nodes, nil
	}
	<-w.ctx.Done()
	return nil, selector.ErrClosed
}

func (w *onceWatcher) Stop() { w.cancel() }

func TestGRPCResolverRejectsEmptySets(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		nodes        []selector.Node
		want         string
	}{
		{"only bad addresses", "rpcguard:///echo", []selector.Node{{ID: "a", Addr: "localhost"}}, `service "echo" has no valid nodes`},
		{"no nodes", "rpcguard:///echo", nil, `service "echo" has no valid nodes`},
		{"no service", "rpcguard:///", []selector.Node{{ID: "a", Addr: "127.0.0.1:1"}}, "names no service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := testcluster.Dial(t, tc.target, testcluster.Resolver(t, badSource{tc.nodes}),
				grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"rpcguard_selector":{}}]}`))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := echo.Unary(ctx, cc)
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("call: %v, want Unavailable with %q", err, tc.want)
			}
		})
	}
}

// A registry entry whose address another node already has (a node that
// restarted under a new ID on the same port within its TTL), a duplicate ID
// and a bad address are each dropped and reported; the rest of the set is
// applied, and every good node gets calls.
func TestGRPCResolverDropsBadEntriesOneByOne(t *testing.T) {
	c := testcluster.Start(t, 3)
	ns := toNodes(c.Nodes)
	set := []selector.Node{
		ns[0],
		{ID: "bad-addr", Addr: "localhost"},
		{ID: ns[0].ID, Addr: "127.0.0.1:1"}, // duplicate ID
		ns[1],
		{ID: "ghost", Addr: strings.ToUpper(ns[1].Addr)}, // ns[1]'s address, another ID
		ns[2],
	}
	var mu sync.Mutex
	var dropped []string
	cc := testcluster.Dial(t, "rpcguard:///echo", testcluster.Resolver(t, badSource{set}, selector.WithHooks(selector.Hooks{OnDropped: func(service string, err error) {
		mu.Lock()
		defer mu.Unlock()
		dropped = append(dropped, service+": "+err.Error())
	}})), grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"rpcguard_selector":{}}]}`))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Round robin covers only the nodes whose connections are ready: call
	// until every good node got one (a node left out never would).
	for slices.Contains(c.Calls(), 0) {
		if _, err := echo.Unary(ctx, cc, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("%v; calls %v: the resolver did not apply the good part of the set", err, c.Calls())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dropped) != 3 {
		t.Fatalf("dropped %d entries, want 3: %q", len(dropped), dropped)
	}
	for i, want := range []string{"bad-addr", `duplicate node ID "node-0"`, `"node-1" and "ghost" share the address`} {
		if !strings.Contains(dropped[i], want) || !strings.HasPrefix(dropped[i], "echo: ") {
			t.Errorf("report %d: %q, want the service and %q", i, dropped[i], want)
		}
	}
}

func TestParseConfigRejectsTrailingData(t *testing.T) {
	parser := balancer.Get(selector.BalancerName).(balancer.ConfigParser)
	if _, err := parser.ParseConfig([]byte(`{"strategy":"random"}`)); err != nil {
		t.Fatal(err)
	}
	for _, js := range []string{`{"strategy":"random"} {}`, `{} x`, `{"strategy":"random"}]`} {
		if _, err := parser.ParseConfig([]byte(js)); err == nil || !strings.Contains(err.Error(), "after the JSON object") && !strings.Contains(err.Error(), "invalid character") {
			t.Errorf("ParseConfig(%s) = %v, want an error about the data after the object", js, err)
		}
	}
}

func TestNewResolverBuilderRefusesNil(t *testing.T) {
	var mem *nilSource
	for _, src := range []selector.Source{nil, mem} {
		if _, err := selector.NewResolverBuilder(src); err == nil || !strings.Contains(err.Error(), "nil Source") {
			t.Errorf("NewResolverBuilder(%#v) = %v, want a nil Source error", src, err)
		}
	}
}

type nilSource struct{}

func (*nilSource) Watch(context.Context, string) (selector.Watcher, error) { return nil, nil }

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

func TestGRPCMetadataFilterFromServiceConfig(t *testing.T) {
	version := func(i int) map[string]string { return map[string]string{"version": fmt.Sprintf("v%d", i%2+1)} }
	h := newHarnessMeta(t, 4, version, 2, `{"metadata":{"version":"v2"}}`, "")
	if got := h.nodesInUse(); !slices.Equal(got, []string{"node-1", "node-3"}) {
		t.Fatalf("nodes in use %v, want the v2 nodes node-1 and node-3", got)
	}
	ns := toNodes(h.cluster.Nodes)
	before := h.cluster.Calls()
	for range 100 {
		if _, err := h.call(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	after := h.cluster.Calls()
	if after[0] != before[0] || after[2] != before[2] || after[1]+after[3]-before[1]-before[3] != 100 {
		t.Fatalf("calls per node went %v → %v: want all 100 on the v2 nodes 1 and 3", before, after)
	}
	// No node passes: calls fail at once with ErrNoNodes, they do not hang.
	for i := range ns {
		ns[i].Metadata = map[string]string{"version": "v1"}
	}
	if err := h.src.Update(ns...); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 10*time.Second, "a picker with no node", func() bool {
		_, err := h.call(context.Background())
		return errors.Is(err, selector.ErrNoNodes)
	})
}

// TestGRPCSubset: with subsetting, the balancer connects to the client's
// subset and its spares only, and calls go to the subset; when every node
// of the subset is down, calls go to a spare.
func TestGRPCSubset(t *testing.T) {
	cluster := testcluster.Start(t, 12)
	src, err := selector.NewStatic(toNodes(cluster.Nodes)...)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sel *selector.Selector
	onNew := selector.WithOnNew(func(s *selector.Selector) { mu.Lock(); sel = s; mu.Unlock() })
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:{"strategy":"p2c","subset":{"size":4,"minNodes":0,"client":3,"spares":1}}}]}`, selector.BalancerName)
	cc := testcluster.Dial(t, "rpcguard:///echo", testcluster.Resolver(t, src, onNew), grpc.WithDefaultServiceConfig(sc))
	inSubset := func() (in, all map[string]bool) {
		mu.Lock()
		defer mu.Unlock()
		in, all = map[string]bool{}, map[string]bool{}
		if sel == nil {
			return in, all
		}
		for _, st := range sel.Snapshot() {
			all[st.Node.ID] = true
			if st.InSubset {
				in[st.Node.ID] = true
			}
		}
		return in, all
	}
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := echo.Unary(ctx, cc, grpc.WaitForReady(true))
		return err
	}
	for range 300 {
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	var in, ready map[string]bool
	testcluster.WaitFor(t, 10*time.Second, "the subset and a spare connected", func() bool {
		in, ready = inSubset()
		return len(in) >= 2 && len(ready) == len(in)+1
	})
	spareCalls := int64(0)
	for i, n := range cluster.Nodes {
		c := cluster.Calls()[i]
		switch {
		case !ready[n.ID] && c > 0:
			t.Errorf("node %s, neither in the subset %v nor a spare, served %d calls", n.ID, in, c)
		case ready[n.ID] && !in[n.ID]:
			spareCalls = c
		}
	}
	if spareCalls > 15 { // only while no node of the subset was connected yet
		t.Errorf("the spare served %d of 300 calls", spareCalls)
	}
	for _, n := range cluster.Nodes {
		if in[n.ID] {
			n.Kill()
		}
	}
	testcluster.WaitFor(t, 10*time.Second, "calls served outside the dead subset", func() bool {
		before := cluster.Calls()
		if call() != nil {
			return false
		}
		for i, n := range cluster.Nodes {
			if cluster.Calls()[i] > before[i] {
				return ready[n.ID] && !in[n.ID] // the spare
			}
		}
		return false
	})
}
