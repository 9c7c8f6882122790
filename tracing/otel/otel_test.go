package otel_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
	rgotel "github.com/rpcguard/rpcguard/tracing/otel"
)

func TestMain(m *testing.M) {
	// The SDK reports what it drops (malformed baggage from remote
	// clients, an exporter's errors) through the process's error handler,
	// which logs each; the tests make them on purpose.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	goleak.VerifyTestMain(m, testcluster.HystrixGoroutines()...)
}

// w3c is the default propagator, as the servers' otelgrpc uses it.
var w3c = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// newProvider returns an OpenTelemetry SDK provider that records its
// spans in memory (the SDK's own recorder).
func newProvider(t testing.TB) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, sr
}

// newTracing is rgotel.New that fails the test on an error.
func newTracing(t testing.TB, tp trace.TracerProvider, opts ...rgotel.Option) *tracing.Tracing {
	t.Helper()
	tg, err := rgotel.New(tp, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// otelServer starts an Echo node instrumented with otelgrpc's stats
// handler on tp.
func otelServer(t testing.TB, id string, tp trace.TracerProvider, prop propagation.TextMapPropagator) *echo.Server {
	t.Helper()
	n, err := echo.Start(id, grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(prop))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Kill)
	return n
}

// client is rpcguard.NewClient of the nodes with tg, round robin and no
// ejection (so that a test can find a call that tried a given node first).
func client(t testing.TB, tg *tracing.Tracing, p *retry.Policy, nodes ...*echo.Server) *grpc.ClientConn {
	t.Helper()
	var ns []selector.Node
	for _, n := range nodes {
		ns = append(ns, selector.Node{ID: n.ID, Addr: n.Addr})
	}
	src, err := selector.NewStatic(ns...)
	if err != nil {
		t.Fatal(err)
	}
	opts := []rpcguard.Option{rpcguard.WithTracing(tg), rpcguard.WithBalancerConfig(`{"strategy":"round_robin"}`),
		rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials()))}
	if p != nil {
		opts = append(opts, rpcguard.WithRetry(p))
	}
	cc, err := rpcguard.NewClient("echo", src, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// idempotent is a retry policy for which every method is idempotent.
func idempotent(t testing.TB) *retry.Policy {
	t.Helper()
	p, err := retry.New(retry.WithIdempotent("*"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// untilFirstTried calls until a call's first attempt went to first
// (its calls grew before second's did), resetting the recorder's view
// before each: it returns the spans that call ended with.
func untilFirstTried(t *testing.T, sr *tracetest.SpanRecorder, cc *grpc.ClientConn, first *echo.Server, want int) []sdktrace.ReadOnlySpan {
	t.Helper()
	for i := 0; ; i++ {
		if i == 50 {
			t.Fatal("no call tried the first node first in 50 calls")
		}
		before := len(sr.Ended())
		calls := first.Calls()
		if _, err := echo.Unary(context.Background(), cc, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
		if first.Calls() == calls {
			continue
		}
		testcluster.WaitFor(t, 5*time.Second, fmt.Sprintf("%d spans", want), func() bool { return len(sr.Ended())-before >= want })
		return sr.Ended()[before:]
	}
}

// attr returns a span's attribute as a string ("" if absent).
func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// tree writes spans as an indented tree (for failures and the docs).
func tree(spans []sdktrace.ReadOnlySpan) string {
	byParent := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent().SpanID(); p.IsValid() && ids[p] {
			byParent[p] = append(byParent[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		var tags []string
		for _, k := range []string{"rpcguard.attempt", "rpcguard.hedge", "rpcguard.node.id", "rpc.system", "rpc.grpc.status_code", "server.address"} {
			if v := attr(s, k); v != "" {
				tags = append(tags, k+"="+v)
			}
		}
		fmt.Fprintf(&b, "%s%s [%s, trace %s] %s\n", strings.Repeat("  ", depth), s.Name(), s.SpanKind(), s.SpanContext().TraceID().String()[:8], strings.Join(tags, " "))
		kids := byParent[s.SpanContext().SpanID()]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTime().Before(kids[j].StartTime()) })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}

// oneTrace fails unless all spans share one trace and each server span's
// parent is an attempt span, one server span per attempt.
func oneTrace(t *testing.T, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	if len(spans) == 0 {
		t.Fatal("no spans")
	}
	tid := spans[0].SpanContext().TraceID()
	attempts := map[trace.SpanID]string{} // attempt span → node
	for _, s := range spans {
		if s.SpanContext().TraceID() != tid {
			t.Fatalf("two traces:\n%s", tree(spans))
		}
		if strings.HasSuffix(s.Name(), " attempt") {
			attempts[s.SpanContext().SpanID()] = attr(s, "rpcguard.node.id")
		}
	}
	servers := 0
	for _, s := range spans {
		if s.SpanKind() != trace.SpanKindServer {
			continue
		}
		servers++
		if _, ok := attempts[s.Parent().SpanID()]; !ok {
			t.Errorf("server span %q's parent is not an attempt span:\n%s", s.Name(), tree(spans))
		}
	}
	if servers != len(attempts) {
		t.Errorf("%d server spans for %d attempts:\n%s", servers, len(attempts), tree(spans))
	}
}

// (a) A retried call: attempt 1 fails on node bad, attempt 2 is served by
// node good; both servers are on otelgrpc. One trace; each server span
// under the attempt that reached it.
func TestRetriedCallIsOneTraceWithOtelgrpcServers(t *testing.T) {
	ctp, sr := newProvider(t)
	stp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = stp.Shutdown(context.Background()) })
	bad, good := otelServer(t, "bad", stp, w3c), otelServer(t, "good", stp, w3c)
	bad.SetFault(echo.FailWith(codes.Unavailable))
	cc := client(t, newTracing(t, ctp), idempotent(t), bad, good)
	spans := untilFirstTried(t, sr, cc, bad, 5)
	t.Logf("retried call:\n%s", tree(spans))
	oneTrace(t, spans)
	var call, first, second sdktrace.ReadOnlySpan
	for _, s := range spans {
		switch {
		case s.Name() == echo.UnaryMethod:
			call = s
		case attr(s, "rpcguard.attempt") == "1":
			first = s
		case attr(s, "rpcguard.attempt") == "2":
			second = s
		}
	}
	if call == nil || first == nil || second == nil {
		t.Fatalf("want a call span and attempts 1 and 2:\n%s", tree(spans))
	}
	if call.SpanKind() != trace.SpanKindClient || attr(call, "rpc.system") != "grpc" || attr(call, "rpc.service") != echo.Service || attr(call, "rpc.method") != "Unary" {
		t.Errorf("call span kind %v, attributes %v", call.SpanKind(), call.Attributes())
	}
	if attr(first, "rpcguard.node.id") != "bad" || first.Status().Code.String() != "Error" || attr(first, "rpc.grpc.status_code") != fmt.Sprint(int(codes.Unavailable)) {
		t.Errorf("attempt 1: status %v, attributes %v", first.Status(), first.Attributes())
	}
	if attr(second, "rpcguard.node.id") != "good" || attr(second, "server.address") != "127.0.0.1" || first.Parent().SpanID() != call.SpanContext().SpanID() || second.Parent().SpanID() != call.SpanContext().SpanID() {
		t.Errorf("attempt 2 attributes %v, or an attempt not under the call span:\n%s", second.Attributes(), tree(spans))
	}
}

// (a) A hedged call: the first attempt to a slow node, the hedge to a fast
// one, which wins. One trace; each otelgrpc server span under its attempt.
func TestHedgedCallIsOneTraceWithOtelgrpcServers(t *testing.T) {
	ctp, sr := newProvider(t)
	stp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = stp.Shutdown(context.Background()) })
	slow, fast := otelServer(t, "slow", stp, w3c), otelServer(t, "fast", stp, w3c)
	slow.SetFault(echo.Delay(300 * time.Millisecond))
	p, err := retry.New(retry.WithIdempotent("*"), retry.WithHedging(20*time.Millisecond, "*"))
	if err != nil {
		t.Fatal(err)
	}
	cc := client(t, newTracing(t, ctp), p, slow, fast)
	spans := untilFirstTried(t, sr, cc, slow, 5) // the slow server's span ends when it sees the cancel
	t.Logf("hedged call:\n%s", tree(spans))
	oneTrace(t, spans)
	hedged := false
	for _, s := range spans {
		if attr(s, "rpcguard.hedge") == "true" && attr(s, "rpcguard.node.id") == "fast" {
			hedged = true
		}
	}
	if !hedged {
		t.Errorf("no hedge span to node fast:\n%s", tree(spans))
	}
}

// A call continues the OpenTelemetry span its context holds: the
// application's own root span, and, inside a handler behind rpcguard's
// server span, a span the handler started through OpenTelemetry's API
// (which comes after the server span: the call goes under it).
func TestCallContinuesTheOtelSpanInItsContext(t *testing.T) {
	tp, sr := newProvider(t)
	tg := newTracing(t, tp)
	app := tp.Tracer("app")
	b := otelServer(t, "b", tp, w3c)
	toB := client(t, tg, nil, b)
	a, err := echo.Start("a", grpc.ChainUnaryInterceptor(tg.UnaryServerInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Kill)
	a.SetFault(func(ctx context.Context, _ string) error {
		ctx, work := app.Start(ctx, "work")
		defer work.End()
		_, err := echo.Unary(ctx, toB, grpc.WaitForReady(true))
		return err
	})
	cc := client(t, tg, nil, a)
	ctx, root := app.Start(context.Background(), "root")
	_, err = echo.Unary(ctx, cc, grpc.WaitForReady(true))
	root.End()
	if err != nil {
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 5*time.Second, "8 spans", func() bool { return len(sr.Ended()) == 8 })
	spans := sr.Ended()
	t.Logf("\n%s", tree(spans))
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	parentOf := func(child, parent sdktrace.ReadOnlySpan) bool {
		return child.Parent().SpanID() == parent.SpanContext().SpanID() && child.SpanContext().TraceID() == parent.SpanContext().TraceID()
	}
	calls, works, servers := byName[echo.UnaryMethod], byName["work"], byName[echo.UnaryMethod]
	if len(byName["root"]) != 1 || len(works) != 1 || len(calls) != 3 { // two call spans and a server span share the method's name
		t.Fatalf("spans:\n%s", tree(spans))
	}
	root0, work := byName["root"][0], works[0]
	var first, second, aServer sdktrace.ReadOnlySpan
	for _, s := range servers {
		switch {
		case s.SpanKind() == trace.SpanKindServer:
			aServer = s
		case parentOf(s, root0):
			first = s
		case parentOf(s, work):
			second = s
		}
	}
	if first == nil || second == nil || aServer == nil || !parentOf(work, aServer) {
		t.Errorf("want root → call → attempt → A's server span → work → call:\n%s", tree(spans))
	}
}
