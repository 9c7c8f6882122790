package gomicro_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opentracing/opentracing-go"
	jaegerclient "github.com/uber/jaeger-client-go"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	mselector "go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
	"github.com/rpcguard/rpcguard/tracing/jaeger"
)

// Attacks on the go-micro adapter: what a remote peer, a registry or a
// careless caller can do must neither crash, wedge nor grow it.

// within fails the test if f does not return within 10 s: a call that
// never returns is the bug.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still blocked after 10 s", what)
	}
}

// A service with no node answers at once; healthy calls beside it and the
// selector's Close are never held up (the selector used to wait for a
// first node set under its lock).
func TestNoNodeServiceNeverWedgesTheSelector(t *testing.T) {
	f := newFleet(t, 1, nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := hello(f.cli, "nobody", "x"); err == nil {
				t.Error("a call to a service with no node succeeded")
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := f.call("x"); err != nil {
				t.Errorf("a healthy call beside it: %v", err)
			}
		}()
	}
	within(t, "calls to a service with no node and healthy calls", wg.Wait)
}

// Close stops the selector for good: Select fails after it (it used to
// start following the registry again and leak its goroutines), Init with
// another registry does not bring it back (it did: go-micro's
// client.Registry calls Init), and a second Close is harmless.
func TestSelectorUseAfterClose(t *testing.T) {
	f := newFleet(t, 1, nil)
	sel, err := gomicro.NewSelector(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sel.Select("greeter"); err != nil {
		t.Fatal(err)
	}
	within(t, "Close", func() { _ = sel.Close() })
	if _, err := sel.Select("greeter"); !errors.Is(err, selector.ErrClosed) {
		t.Fatalf("Select after Close: %v, want selector.ErrClosed", err)
	}
	if err := sel.Init(mselector.Registry(newFleet(t, 1, nil).reg)); !errors.Is(err, selector.ErrClosed) {
		t.Fatalf("Init with another registry after Close: %v, want selector.ErrClosed", err)
	}
	if _, err := sel.Select("greeter"); !errors.Is(err, selector.ErrClosed) {
		t.Fatalf("Select after Close and Init: %v, want selector.ErrClosed", err)
	}
	if err := sel.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

// A registry that lists two entries with one ID, in map order, changes no
// node set while it does not change (the sets flipped between the two
// addresses every list).
func TestDuplicateIDsDoNotFlipTheNodeSet(t *testing.T) {
	reg := newMicroRegistry()
	for i, addr := range []string{"127.0.0.1:7001", "127.0.0.1:7002"} {
		svc := &registry.Service{Name: "greeter", Version: []string{"v1", "v2"}[i], Nodes: []*registry.Node{{Id: "greeter-1", Address: addr}}}
		if err := reg.Register(svc, registry.RegisterTTL(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	src, err := gomicro.Source(reg, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second) // about 100 lists
	defer cancel()
	w, err := src.Watch(ctx, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	sets := 0
	for {
		if _, err := w.Next(); err != nil {
			break // the watch's context ended
		}
		sets++
	}
	if sets != 1 {
		t.Fatalf("an unchanged registry delivered %d node sets in 1 s, want 1", sets)
	}
}

// A stream whose context ends as it opens ends its call once: no crash, no
// race (-race), its breaker slot given back. The context ends before the
// call, or right after go-micro opened the stream and before rpcguard's
// wrapper has it (a client wrapper under rpcguard's cancels it there; go-micro
// itself abandons a stream whose context ends while it dials, and leaks its
// connection, so the test does not make that happen).
func TestStreamCancelledAsItOpens(t *testing.T) {
	brk, err := breaker.New(breaker.WithNamespace(namespace()), breaker.WithSettings(breaker.Settings{MaxConcurrent: 1}))
	if err != nil {
		t.Fatal(err)
	}
	f := newFleetOf(t, grpcKind, 1, nil)
	var cancelOpened context.CancelFunc
	cli := f.client(t, []gomicro.Option{gomicro.WithBreaker(brk)}, client.Wrap(func(next client.Client) client.Client {
		return &cancelAfterOpen{Client: next, cancel: &cancelOpened}
	}))
	for i := range 100 {
		ctx, cancel := context.WithCancel(context.Background())
		if i%2 == 0 {
			cancel() // before the call
		} else {
			cancelOpened = cancel // once go-micro has opened the stream
		}
		if s, err := cli.Stream(ctx, cli.NewRequest("greeter", "Greeter.Chat", &Req{})); err == nil {
			var rsp Rsp
			for s.Send(&Req{Name: "x"}) == nil && s.Recv(&rsp) == nil {
			}
			_ = s.Close()
		}
		cancel()
		cancelOpened = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := cli.Stream(ctx, cli.NewRequest("greeter", "Greeter.Chat", &Req{}))
	if err != nil {
		t.Fatalf("a stream after 100 cancelled ones: %v (a slot leaked?)", err)
	}
	_ = s.Close()
}

// cancelAfterOpen cancels the call's context as soon as the client under
// it has opened the stream.
type cancelAfterOpen struct {
	client.Client
	cancel *context.CancelFunc
}

func (c *cancelAfterOpen) Stream(ctx context.Context, req client.Request, opts ...client.CallOption) (client.Stream, error) {
	s, err := c.Client.Stream(ctx, req, opts...)
	if *c.cancel != nil {
		(*c.cancel)()
	}
	return s, err
}

// A handler that panics ends its server span and gives back its breaker
// slot; go-micro's server recovers the panic and the next call is served.
func TestHandlerPanicEndsItsSpanAndSlot(t *testing.T) {
	tg, rep := inMemoryTracing(t, "gomicro-panic")
	brk, err := breaker.New(breaker.WithNamespace(namespace()), breaker.WithSettings(breaker.Settings{MaxConcurrent: 1}))
	if err != nil {
		t.Fatal(err)
	}
	hw, err := gomicro.NewHandlerWrapper(gomicro.WithTracing(tg), gomicro.WithBreaker(brk))
	if err != nil {
		t.Fatal(err)
	}
	var panicking atomic.Bool
	panicking.Store(true)
	bug := func(h server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			if panicking.Load() {
				panic("a bug in the handler")
			}
			return h(ctx, req, rsp)
		}
	}
	f := newFleet(t, 1, nil, server.WrapHandler(hw), server.WrapHandler(bug))
	if _, err := f.call("x"); err == nil {
		t.Fatal("a call to a panicking handler succeeded")
	}
	spans := rep.GetSpans()
	if len(spans) != 1 || spans[0].(*jaegerclient.Span).Tags()["error"] != true {
		t.Fatalf("finished server spans after the panic: %d, want 1 marked error", len(spans))
	}
	panicking.Store(false)
	if _, err := f.call("x"); err != nil {
		t.Fatalf("the next call: %v (its breaker slot leaked?)", err)
	}
}

// A remote client's trace headers that go-micro relays into a handler's
// context (a non-ASCII Jaeger-Baggage, a second Uber-Trace-Id of another
// case) never reach, or break, the calls the handler makes over the grpc
// plugin: the wrapper writes its own trace headers in their place; other
// headers go on as go-micro relays them.
func TestRelayedTraceHeadersNeverBreakACall(t *testing.T) {
	tg, _ := inMemoryTracing(t, "gomicro-relay")
	f := newFleetOf(t, grpcKind, 1, []gomicro.Option{gomicro.WithTracing(tg)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx = metadata.NewContext(ctx, metadata.Metadata{"Jaeger-Baggage": "user=José", "Jaeger-Debug-Id": "Ω", "Uber-Trace-Id": "not-a-trace", "X-Tenant": "a"})
	var rsp Rsp
	if err := f.cli.Call(ctx, f.cli.NewRequest("greeter", "Greeter.Hello", &Req{Name: "x"}), &rsp); err != nil {
		t.Fatalf("a call with a remote peer's trace headers in its context: %v", err)
	}
}

// A remote client that sends made-up service names (mucp's Micro-Service
// header) to a server makes no circuit: the handler wrapper names circuits
// by the endpoint go-micro routed to (300 names made 300 circuits, and
// hystrix two goroutines each, for ever).
func TestMadeUpServiceNamesMakeNoCircuits(t *testing.T) {
	brk, err := breaker.New(breaker.WithNamespace(namespace()))
	if err != nil {
		t.Fatal(err)
	}
	hw, err := gomicro.NewHandlerWrapper(gomicro.WithBreaker(brk))
	if err != nil {
		t.Fatal(err)
	}
	f := newFleet(t, 1, nil, server.WrapHandler(hw))
	svcs, err := f.reg.GetService("greeter")
	if err != nil || len(svcs) == 0 || len(svcs[0].Nodes) == 0 {
		t.Fatalf("the server is not registered: %v", err)
	}
	addr := svcs[0].Nodes[0].Address
	remote := mucp.client(client.Registry(f.reg), client.Broker(f.brk), client.ContentType(mucp.contentType), client.PoolSize(0))
	for i := range 300 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var rsp Rsp
		err := remote.Call(ctx, remote.NewRequest(fmt.Sprintf("made-up-%d", i), "Greeter.Hello", &Req{Name: "x"}), &rsp, client.WithAddress(addr))
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if cmds := brk.Snapshot(); len(cmds) != 1 || cmds[0].Command != "Greeter.Hello" {
		t.Fatalf("circuits after 300 made-up service names: %d (%v), want 1, Greeter.Hello", len(cmds), cmds[:min(len(cmds), 3)])
	}
}

// A server that relays its own dependency's dial failure as it is (a
// go-micro error with Id go.micro.client and "connection error") answered
// a call that reached it: a call that is not idempotent runs its handler
// once, never again on another node.
func TestRelayedDialFailureIsNotNeverSent(t *testing.T) {
	f := newFleet(t, 3, nil)
	for _, g := range f.servers {
		g.failWith(merrors.InternalServerError("go.micro.client", "connection error: dial tcp 127.0.0.1:1: connect: connection refused"))
	}
	if _, err := f.call("x"); err == nil {
		t.Fatal("the relayed error came back as a success")
	}
	var calls int64
	for _, g := range f.servers {
		calls += g.calls.Load()
	}
	if calls != 1 {
		t.Fatalf("a call that is not idempotent reached %d handlers, want 1", calls)
	}
}

// inMemoryTracing is a real jaeger-client-go tracer that reports its
// finished spans to rep, closed when the test ends.
func inMemoryTracing(t *testing.T, service string) (*tracing.Tracing, *jaegerclient.InMemoryReporter) {
	t.Helper()
	tg, _, rep := inMemoryTracer(t, service)
	return tg, rep
}

// inMemoryTracer is inMemoryTracing with the tracer itself.
func inMemoryTracer(t *testing.T, service string) (*tracing.Tracing, opentracing.Tracer, *jaegerclient.InMemoryReporter) {
	t.Helper()
	rep := jaegerclient.NewInMemoryReporter()
	tr, closer, err := jaeger.New(service, jaeger.WithInMemoryReporter(rep))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closer.Close() })
	tg, err := tracing.New(tracing.WithTracer(tr))
	if err != nil {
		t.Fatal(err)
	}
	return tg, tr, rep
}
