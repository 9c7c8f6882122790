package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opentracing/opentracing-go"
	jaegerclient "github.com/uber/jaeger-client-go"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
	"github.com/rpcguard/rpcguard/tracing/jaeger"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testcluster.HystrixGoroutines()...) }

// newTracing returns a Tracing on a real jaeger-client-go tracer that keeps
// its spans in memory.
func newTracing(t testing.TB, opts ...tracing.Option) (*tracing.Tracing, *jaegerclient.InMemoryReporter) {
	t.Helper()
	rep := jaegerclient.NewInMemoryReporter()
	tr, closer, err := jaeger.New("rpcguard-test", jaeger.WithInMemoryReporter(rep))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closer.Close() })
	tg, err := tracing.New(append([]tracing.Option{tracing.WithTracer(tr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return tg, rep
}

type span struct {
	op                string
	trace, id, parent string
	tags              map[string]any
}

func spans(rep *jaegerclient.InMemoryReporter) []span {
	var out []span
	for _, s := range rep.GetSpans() {
		js := s.(*jaegerclient.Span)
		sc := js.SpanContext()
		tags := js.Tags()
		if k, ok := tags["span.kind"]; ok {
			tags["span.kind"] = fmt.Sprint(k) // an ext.SpanKindEnum: compare as a string
		}
		out = append(out, span{op: js.OperationName(), trace: sc.TraceID().String(), id: sc.SpanID().String(), parent: sc.ParentID().String(), tags: tags})
	}
	return out
}

// find returns the span named op of the given kind.
func find(t *testing.T, all []span, op, kind string) span {
	t.Helper()
	for _, s := range all {
		if s.op == op && s.tags["span.kind"] == kind {
			return s
		}
	}
	t.Fatalf("no %s span %q among %v", kind, op, ops(all))
	return span{}
}

func ops(all []span) []string {
	var o []string
	for _, s := range all {
		o = append(o, s.op)
	}
	return o
}

func TestGRPCThenHTTPIsOneTrace(t *testing.T) {
	tg, rep := newTracing(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /b/{id}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "b") })
	b := httptest.NewServer(tg.Middleware(mux))
	defer b.Close()
	httpc := &http.Client{Transport: tg.RoundTripper(nil)}

	a, err := echo.Start("a", grpc.ChainUnaryInterceptor(tg.UnaryServerInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Kill()
	a.SetFault(func(ctx context.Context, _ string) error { // server A calls server B over HTTP
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.URL+"/b/7", nil)
		resp, err := httpc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	src, _ := selector.NewStatic(selector.Node{ID: "a", Addr: a.Addr})
	cc := testcluster.Dial(t, "rpcguard:///echo", testcluster.Resolver(t, src),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"rpcguard_selector":{}}]}`),
		grpc.WithChainUnaryInterceptor(tg.UnaryClientInterceptor()))
	if _, err := echo.Unary(context.Background(), cc, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 5*time.Second, "4 spans", func() bool { return len(rep.GetSpans()) == 4 })
	all := spans(rep)
	client := find(t, all, echo.UnaryMethod, "client")
	server := find(t, all, echo.UnaryMethod, "server")
	httpClient := find(t, all, "HTTP GET", "client")
	httpServer := find(t, all, "HTTP GET /b/{id}", "server")
	for _, s := range all {
		if s.trace != client.trace {
			t.Fatalf("span %q is in trace %s, not the client's %s", s.op, s.trace, client.trace)
		}
	}
	checks := []struct {
		child, parent span
		kind          string
	}{{server, client, "server"}, {httpClient, server, "client"}, {httpServer, httpClient, "server"}}
	for _, c := range checks {
		if c.child.parent != c.parent.id || c.child.tags["span.kind"] != c.kind {
			t.Errorf("span %q (kind %v) has parent %s, want %s (%q) and kind %s", c.child.op, c.child.tags["span.kind"], c.child.parent, c.parent.id, c.parent.op, c.kind)
		}
	}
	if client.tags["span.kind"] != "client" || client.tags["peer.service"] != "echo" || client.tags["peer.address"] != a.Addr || client.tags[tracing.TagNodeID] != "a" {
		t.Errorf("client span tags %v: want kind client, peer.service echo, peer.address %s, node a", client.tags, a.Addr)
	}
	if server.tags["peer.address"] == nil || httpServer.tags["http.status_code"] != uint16(200) {
		t.Errorf("server tags %v, HTTP server tags %v", server.tags, httpServer.tags)
	}
}

// The plain API with a dead first node: one call span, two attempt spans
// under it, the failed one an error, each tagged with its node.
func TestDeadFirstNodeShowsTwoAttempts(t *testing.T) {
	tg, rep := newTracing(t)
	live := testcluster.Start(t, 1).Nodes[0]
	dead := testcluster.DeadAddr(t)
	sel, _ := selector.New(selector.WithStrategy(selector.RoundRobin))
	_ = sel.Update([]selector.Node{{ID: "dead", Addr: dead}, {ID: "live", Addr: live.Addr}})
	policy, _ := retry.New(retry.WithIdempotent("*"))
	conns := map[string]*grpc.ClientConn{dead: testcluster.Dial(t, "passthrough:///"+dead), live.Addr: testcluster.Dial(t, "passthrough:///"+live.Addr)}

	ctx, finish := tg.StartCall(context.Background(), "GetUser", tracing.SpanInfo{})
	err := policy.Do(ctx, sel, func(ctx context.Context, n selector.Node) error {
		ctx, done := tg.StartAttempt(ctx, "GetUser", tracing.SpanInfo{})
		carrier := map[string]string{}
		tg.Inject(ctx, func(k, v string) { carrier[k] = v })
		_, err := echo.Unary(metadata.NewOutgoingContext(ctx, metadata.New(carrier)), conns[n.Addr])
		done(err)
		return err
	})
	finish(err)
	if err != nil {
		t.Fatal(err)
	}
	all := spans(rep)
	call := find(t, all, "GetUser", "client")
	var attempts []span
	for _, s := range all {
		if s.op == "GetUser attempt" {
			attempts = append(attempts, s)
		}
	}
	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2 (%v)", len(attempts), ops(all))
	}
	for i, a := range attempts {
		want := []string{"dead", "live"}[i]
		if a.parent != call.id || a.tags[tracing.TagNodeID] != want || a.tags[tracing.TagAttempt] != i+1 {
			t.Errorf("attempt %d: parent %s (call %s), tags %v; want node %s", i+1, a.parent, call.id, a.tags, want)
		}
		if (a.tags["error"] == true) != (i == 0) {
			t.Errorf("attempt %d error tag %v", i+1, a.tags["error"])
		}
	}
	if call.tags["error"] == true {
		t.Error("the call succeeded but its span is an error")
	}
}

// Through the interceptors: a call retried after an Unavailable node shows
// a call span with two attempt spans, and the server spans are children of
// the attempts.
func TestRetriedGRPCCallShowsAttemptSpans(t *testing.T) {
	tg, rep := newTracing(t)
	cluster := testcluster.Start(t, 0)
	var nodes []selector.Node
	for _, id := range []string{"bad", "good"} {
		n, err := echo.Start(id, grpc.ChainUnaryInterceptor(tg.UnaryServerInterceptor()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Kill)
		cluster.Nodes = append(cluster.Nodes, n)
		nodes = append(nodes, selector.Node{ID: id, Addr: n.Addr})
	}
	cluster.Nodes[0].SetFault(echo.FailWith(codes.Unavailable))
	src, _ := selector.NewStatic(nodes...)
	policy, _ := retry.New(retry.WithIdempotent("*"))
	cc := testcluster.Dial(t, "rpcguard:///echo", testcluster.Resolver(t, src),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"rpcguard_selector":{}}]}`),
		grpc.WithChainUnaryInterceptor(tg.UnaryClientInterceptor(), policy.UnaryClientInterceptor(), tg.AttemptUnaryClientInterceptor()))
	for cluster.Nodes[0].Calls() == 0 || cluster.Nodes[1].Calls() == 0 { // until both nodes are connected
		_, _ = echo.Unary(context.Background(), cc, grpc.WaitForReady(true))
	}
	for {
		rep.Reset()
		before := cluster.Nodes[0].Calls()
		if _, err := echo.Unary(context.Background(), cc); err != nil {
			t.Fatal(err)
		}
		if cluster.Nodes[0].Calls() > before {
			break // this call tried the bad node first
		}
	}
	testcluster.WaitFor(t, 5*time.Second, "5 spans", func() bool { return len(rep.GetSpans()) == 5 })
	all := spans(rep)
	var call span
	var attempts, servers []span
	for _, s := range all {
		switch {
		case s.op == echo.UnaryMethod && s.tags["span.kind"] == "client":
			call = s
		case s.op == echo.UnaryMethod+" attempt":
			attempts = append(attempts, s)
		case s.tags["span.kind"] == "server":
			servers = append(servers, s)
		}
	}
	if len(attempts) != 2 || len(servers) != 2 {
		t.Fatalf("spans %v: want a call, 2 attempts, 2 server spans", ops(all))
	}
	for _, a := range attempts {
		if a.parent != call.id {
			t.Errorf("attempt span's parent %s, want the call span %s", a.parent, call.id)
		}
	}
	bad, good := attempts[0], attempts[1]
	if bad.tags[tracing.TagAttempt] != 1 || bad.tags[tracing.TagNodeID] != "bad" || bad.tags["error"] != true || bad.tags[tracing.TagGRPCCode] != "Unavailable" {
		t.Errorf("first attempt tags %v", bad.tags)
	}
	if good.tags[tracing.TagAttempt] != 2 || good.tags[tracing.TagNodeID] != "good" || good.tags["error"] == true || good.tags[tracing.TagBackoffMS] != 0.0 {
		t.Errorf("second attempt tags %v", good.tags)
	}
	parents := map[string]bool{bad.id: false, good.id: false}
	for _, s := range servers {
		parents[s.parent] = true
	}
	if !parents[bad.id] || !parents[good.id] {
		t.Errorf("server spans' parents %v, want the two attempts", parents)
	}
}

func TestServerStreamSpanEndsAfterLastMessage(t *testing.T) {
	tg, rep := newTracing(t)
	node := testcluster.Start(t, 1).Nodes[0]
	cc := testcluster.Dial(t, "passthrough:///"+node.Addr, grpc.WithChainStreamInterceptor(tg.StreamClientInterceptor()))
	desc := echo.StreamDescs()[0]
	s, err := cc.NewStream(context.Background(), &desc, echo.ServerStreamMethod)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(wrapperspb.String("100")); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseSend()
	for i := range 100 {
		if err := s.RecvMsg(new(wrapperspb.StringValue)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if n := len(rep.GetSpans()); n != 0 {
			t.Fatalf("the stream's span ended after %d of 100 messages", i+1)
		}
	}
	if err := s.RecvMsg(new(wrapperspb.StringValue)); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	all := spans(rep)
	if len(all) != 1 || all[0].op != echo.ServerStreamMethod || all[0].tags["error"] == true {
		t.Fatalf("spans after the stream ended: %v", all)
	}
}

func TestOversizedTraceHeaderIsIgnored(t *testing.T) {
	var oversized atomic.Int64
	tg, rep := newTracing(t, tracing.WithHooks(tracing.Hooks{OnOversized: func(int) { oversized.Add(1) }}))
	node, err := echo.Start("s", grpc.ChainUnaryInterceptor(tg.UnaryServerInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	defer node.Kill()
	cc := testcluster.Dial(t, "passthrough:///"+node.Addr)
	huge := strings.Repeat("f", 64<<10)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "uber-trace-id", "1:2:0:1", "uberctx-junk", huge)
	if _, err := echo.Unary(ctx, cc); err != nil {
		t.Fatalf("a call with a 64 KiB trace header was not served: %v", err)
	}
	all := spans(rep)
	if len(all) != 1 || all[0].parent != jaegerclient.SpanID(0).String() || all[0].trace == "1" {
		t.Fatalf("server span %+v: want a new trace, no parent", all)
	}
	if oversized.Load() != 1 {
		t.Fatalf("oversized headers counted %d times, want 1", oversized.Load())
	}
}

func TestCanceledCallIsNotAnError(t *testing.T) {
	tg, rep := newTracing(t)
	node := testcluster.Start(t, 1).Nodes[0]
	node.SetFault(echo.Hang())
	cc := testcluster.Dial(t, "passthrough:///"+node.Addr, grpc.WithChainUnaryInterceptor(tg.UnaryClientInterceptor()))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		testcluster.WaitFor(t, 5*time.Second, "the call on the server", func() bool { return node.Calls() > 0 })
		cancel()
	}()
	if _, err := echo.Unary(ctx, cc); status.Code(err) != codes.Canceled {
		t.Fatalf("got %v, want Canceled", err)
	}
	s := spans(rep)[0]
	if s.tags["error"] == true || s.tags[tracing.TagGRPCCode] != "Canceled" {
		t.Fatalf("canceled call's span tags %v: want code Canceled and no error", s.tags)
	}
}

func TestRefusalsShowOnTheSpan(t *testing.T) {
	tg, rep := newTracing(t)
	node := testcluster.Start(t, 1).Nodes[0]
	node.SetFault(echo.FailWith(codes.Unavailable))
	policy, _ := retry.New(retry.WithIdempotent("*"), retry.WithBudget(retry.Budget{Ratio: 0, MinPerSecond: 0}))
	cc := testcluster.Dial(t, "passthrough:///"+node.Addr, grpc.WithChainUnaryInterceptor(tg.UnaryClientInterceptor(), policy.UnaryClientInterceptor()))
	_, err := echo.Unary(context.Background(), cc)
	if !errors.Is(err, retry.ErrBudgetExhausted) {
		t.Fatalf("got %v, want a spent budget", err)
	}
	s := spans(rep)[0]
	if r, _ := s.tags[tracing.TagReason].(string); !strings.Contains(r, "retry budget exhausted") || s.tags["error"] != true {
		t.Fatalf("span tags %v: want the spent budget as rpcguard.reason", s.tags)
	}
}

func TestNoopTracerCallsThrough(t *testing.T) {
	tg, err := tracing.New(tracing.WithTracer(opentracing.NoopTracer{}))
	if err != nil {
		t.Fatal(err)
	}
	node := testcluster.Start(t, 1).Nodes[0]
	var sawTrace atomic.Bool
	node.SetFault(func(ctx context.Context, _ string) error {
		md, _ := metadata.FromIncomingContext(ctx)
		sawTrace.Store(len(md.Get("uber-trace-id")) > 0)
		return nil
	})
	cc := testcluster.Dial(t, "passthrough:///"+node.Addr, grpc.WithChainUnaryInterceptor(tg.UnaryClientInterceptor(), tg.AttemptUnaryClientInterceptor()))
	if _, err := echo.Unary(context.Background(), cc); err != nil || sawTrace.Load() {
		t.Fatalf("no-op tracer: %v, trace header sent %v", err, sawTrace.Load())
	}
}

func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{func() error { _, err := tracing.New(tracing.WithMaxHeaderBytes(0)); return err }(), "must be positive"},
		{func() error { _, err := tracing.New(tracing.WithTraceHeaders("X-Trace")); return err }(), "lowercase"},
		{func() error { _, err := tracing.New(tracing.WithTracer(nil)); return err }(), "nil tracer"},
		{func() error { _, _, err := jaeger.New(""); return err }(), "empty service name"},
		{func() error { _, _, err := jaeger.New("s", jaeger.WithSampler("always", 1)); return err }(), `WithSampler("always")`},
		{func() error { _, _, err := jaeger.New("s", jaeger.WithSampler("probabilistic", 2)); return err }(), "bad parameter"},
		{func() error {
			_, _, err := jaeger.New("s", jaeger.WithCollector("127.0.0.1:14268"))
			return err
		}(), "want an http(s) URL"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", tc.err, tc.want)
		}
	}
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

// Mounted under an outer mux and around the breaker's middleware, the span
// is still named by the inner route, never the outer "/" or the raw URL.
func TestHTTPSpanNamedByInnerRoute(t *testing.T) {
	tg, rep := newTracing(t)
	brk, err := breaker.New(breaker.WithNamespace("tracing-route"))
	if err != nil {
		t.Fatal(err)
	}
	api := http.NewServeMux()
	api.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {})
	root := http.NewServeMux()
	root.Handle("/", tg.Middleware(brk.Middleware(api)))
	srv := httptest.NewServer(root)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/users/42")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	find(t, spans(rep), "HTTP GET /users/{id}", "server")
}
