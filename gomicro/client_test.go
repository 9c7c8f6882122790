package gomicro_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	jaegerclient "github.com/uber/jaeger-client-go"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	mselector "go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
)

var namespaces atomic.Int64

// namespace is a breaker namespace of its own (hystrix-go's circuits are
// process-wide: a test run again must not find the last run's circuit).
func namespace() string { return fmt.Sprintf("gomicro-test-%d", namespaces.Add(1)) }

// fleet is n real go-micro servers of "greeter" and a client with the
// rpcguard wrapper and selector.
type fleet struct {
	service string            // "greeter" if empty
	sopts   []selector.Option // the client's selector's (NewSelector's defaults if none)
	k       kind
	reg     registry.Registry
	brk     broker.Broker
	servers []*Greeter
	cli     client.Client
}

func newFleet(t *testing.T, n int, wopts []gomicro.Option, sopts ...server.Option) *fleet {
	t.Helper()
	return newFleetOf(t, mucp, n, wopts, sopts...)
}

// newFleetOf is newFleet over a kind of transport.
func newFleetOf(t *testing.T, k kind, n int, wopts []gomicro.Option, sopts ...server.Option) *fleet {
	t.Helper()
	return newFleetOn(t, k, newMicroRegistry(), n, wopts, sopts...)
}

// newFleetOn is newFleetOf on a go-micro registry.
func newFleetOn(t *testing.T, k kind, reg registry.Registry, n int, wopts []gomicro.Option, sopts ...server.Option) *fleet {
	t.Helper()
	f := &fleet{k: k, reg: reg, brk: newMicroBroker()}
	for i := range n {
		f.servers = append(f.servers, k.start(t, fmt.Sprintf("greeter-%d", i), f.reg, f.brk, sopts...))
	}
	f.cli = f.client(t, wopts)
	return f
}

func newMicroRegistry() registry.Registry { return registry.NewMemoryRegistry() }
func newMicroBroker() broker.Broker       { return broker.NewMemoryBroker() }

// client is a go-micro client of the fleet with rpcguard's selector and
// client wrapper (wopts, a breaker of its own by default).
func (f *fleet) client(t *testing.T, wopts []gomicro.Option, copts ...client.Option) client.Client {
	t.Helper()
	sel, err := gomicro.NewSelector(f.reg, f.sopts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sel.Close() })
	w, err := gomicro.NewClientWrapper(append([]gomicro.Option{gomicro.WithBreaker(newBreaker(t))}, wopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	// No pooled connections: go-micro's HTTP transport pool stalls a call
	// now and then until its ConnectionTimeout (the call's deadline, when
	// there is no per-attempt timeout), which would fail a test at random.
	return f.k.client(append([]client.Option{client.PoolSize(0), client.Selector(sel), client.Registry(f.reg), client.Broker(f.brk),
		client.ContentType(f.k.contentType), client.Wrap(w)}, copts...)...)
}

func (f *fleet) call(name string) (Rsp, error) {
	service := f.service
	if service == "" {
		service = "greeter"
	}
	return hello(f.cli, service, name)
}

// hello calls service's Greeter.Hello through cli, within 5 s.
func hello(cli client.Client, service, name string, opts ...client.CallOption) (Rsp, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var rsp Rsp
	err := cli.Call(ctx, cli.NewRequest(service, "Greeter.Hello", &Req{Name: name}), &rsp, opts...)
	return rsp, err
}

// routesAround makes warm calls, then measured calls, all of which must
// succeed, and fails t unless at most 1.05 attempts per measured call
// reached the servers (the bad node ejected by then); it returns that
// number.
func (f *fleet) routesAround(t *testing.T, warm, measured int) float64 {
	t.Helper()
	for i := range warm {
		if _, err := f.call("x"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	before := f.served()
	for i := range measured {
		if _, err := f.call("x"); err != nil {
			t.Fatalf("call %d after the warm-up: %v", i, err)
		}
	}
	per := float64(f.served()-before) / float64(measured)
	if per > 1.05 {
		t.Fatalf("%.3f attempts reached the servers per call once the bad node was ejected, want at most 1.05", per)
	}
	return per
}

func (f *fleet) served() int64 {
	var n int64
	for _, s := range f.servers {
		n += s.calls.Load()
	}
	return n
}

// One of 3 nodes dead (registered, closed port), or answering 503, over
// mucp and over the grpc plugins: 1,000 calls all succeed, through
// rpcguard's retries on nodes the call has not tried; once the bad node is
// ejected, at most 1.05 attempts per call reach the servers. Plain
// go-micro (its default selector and retries) runs beside it on the same
// servers, for the record.
func TestClientWrapperRoutesAroundABadNode(t *testing.T) {
	for _, k := range kinds {
		for _, bad := range []string{"dead", "503"} {
			t.Run(k.name+"/"+bad, func(t *testing.T) {
				// A per-attempt timeout, which the wrapper makes go-micro's
				// ConnectionTimeout: go-micro's HTTP transport can stall an
				// attempt until that timeout, whatever the call's deadline.
				policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithPerAttemptTimeout(time.Second))
				if err != nil {
					t.Fatal(err)
				}
				live := 3
				if bad == "dead" {
					live = 2
				}
				f := newFleetOf(t, k, live, []gomicro.Option{gomicro.WithRetry(policy)})
				if bad == "dead" {
					dead := &registry.Node{Id: "greeter-dead", Address: testcluster.DeadAddr(t)}
					if err := f.reg.Register(&registry.Service{Name: "greeter", Nodes: []*registry.Node{dead}}); err != nil {
						t.Fatal(err)
					}
				} else {
					f.servers[2].failWith(merrors.New("greeter-2", "overwhelmed", 503))
				}
				per := f.routesAround(t, 100, 900)
				plainSel := mselector.NewSelector(mselector.Registry(f.reg))
				defer plainSel.Close()
				plain := k.client(client.Selector(plainSel), client.Registry(f.reg),
					client.Broker(f.brk), client.ContentType(k.contentType), client.RequestTimeout(5*time.Second))
				failed := 0
				for range 300 {
					var rsp Rsp
					if plain.Call(context.Background(), plain.NewRequest("greeter", "Greeter.Hello", &Req{Name: "x"}), &rsp) != nil {
						failed++
					}
				}
				t.Logf("rpcguard: 1000 of 1000 calls succeeded, %.3f attempts per call after ejection; plain go-micro: %d of 300 failed", per, failed)
			})
		}
	}
}

// A server's go-micro error reaches the caller as a go-micro error that
// also answers status.Code, and is not retried; an open circuit arrives as
// a 503 that errors.Is finds.
func TestClientWrapperErrors(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { clientErrors(t, k) })
	}
}

func clientErrors(t *testing.T, k kind) {
	brk, err := breaker.New(breaker.WithNamespace(namespace()),
		breaker.WithSettings(breaker.Settings{VolumeThreshold: 5, SleepWindow: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	f := newFleetOf(t, k, 2, []gomicro.Option{gomicro.WithBreaker(brk)})
	before := f.served()
	_, err = f.call("missing")
	if status.Code(gomicro.FromMicro(err)) != codes.NotFound || merrors.FromError(err).Code != 404 || f.served()-before != 1 {
		t.Fatalf("NotFound: %v (code %v, go-micro %d) after %d attempts; want NotFound, 404, one attempt",
			err, status.Code(gomicro.FromMicro(err)), merrors.FromError(err).Code, f.served()-before)
	}
	for _, s := range f.servers {
		s.failWith(merrors.InternalServerError("greeter", "db down"))
	}
	testcluster.WaitFor(t, 10*time.Second, "the circuit to open", func() bool {
		_, err := f.call("x")
		return merrors.FromError(err).Id == gomicro.IDBreaker
	})
	_, err = f.call("x")
	me, ok := err.(*merrors.Error) // go-micro code's own check
	if !ok || me.Id != gomicro.IDBreaker || me.Code != 503 || status.Code(gomicro.FromMicro(err)) != codes.Unavailable {
		t.Fatalf("open circuit: %#v; want a *errors.Error of Id %q, 503, Unavailable", err, gomicro.IDBreaker)
	}
}

// One trace across a go-micro call: the call span, an attempt span per
// attempt (with its node), and the server's span as the attempt's child;
// the server's breaker refuses with 503 over mucp once open.
func TestTraceAcrossAGoMicroCall(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { traceAcross(t, k) })
	}
}

func traceAcross(t *testing.T, k kind) {
	tg, rep := inMemoryTracing(t, "gomicro-test")
	hw, err := gomicro.NewHandlerWrapper(gomicro.WithTracing(tg))
	if err != nil {
		t.Fatal(err)
	}
	f := newFleetOf(t, k, 1, []gomicro.Option{gomicro.WithTracing(tg)}, server.WrapHandler(hw))
	if _, err := f.call("x"); err != nil {
		t.Fatal(err)
	}
	spans := map[string]*jaegerclient.Span{}
	for _, s := range rep.GetSpans() {
		js := s.(*jaegerclient.Span)
		spans[js.OperationName()+" "+fmt.Sprint(js.Tags()["span.kind"])] = js
	}
	call, attempt, srv := spans["greeter Greeter.Hello client"], spans["greeter Greeter.Hello attempt client"], spans["Greeter.Hello server"]
	if call == nil || attempt == nil || srv == nil {
		t.Fatalf("spans %v: want the call, attempt and server spans", spans)
	}
	if attempt.SpanContext().ParentID() != call.SpanContext().SpanID() || srv.SpanContext().ParentID() != attempt.SpanContext().SpanID() {
		t.Fatal("the spans are not one chain: call → attempt → server")
	}
	if attempt.Tags()[tracing.TagNodeID] != "greeter-greeter-0" || attempt.Tags()[tracing.TagAttempt] != 1 {
		t.Fatalf("attempt tags %v: want node greeter-greeter-0 (go-micro's NAME-ID), attempt 1", attempt.Tags())
	}
}

// A stream's span lasts until the stream ends, and its breaker slot is
// given back then: with a concurrency limit of one, streams opened one
// after another all open.
func TestClientWrapperStreams(t *testing.T) {
	tg, rep := inMemoryTracing(t, "gomicro-stream")
	brk, err := breaker.New(breaker.WithNamespace(namespace()), breaker.WithSettings(breaker.Settings{MaxConcurrent: 1}))
	if err != nil {
		t.Fatal(err)
	}
	f := newFleet(t, 1, []gomicro.Option{gomicro.WithTracing(tg), gomicro.WithBreaker(brk)})
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := f.cli.Stream(ctx, f.cli.NewRequest("greeter", "Greeter.Chat", &Req{}))
		if err != nil {
			cancel()
			t.Fatalf("stream %d: %v (a slot held by an ended stream?)", i, err)
		}
		for range 2 {
			var rsp Rsp
			if err := s.Send(&Req{Name: "x"}); err != nil {
				t.Fatal(err)
			}
			if err := s.Recv(&rsp); err != nil || rsp.From != "greeter-0" {
				t.Fatalf("recv: %+v, %v", rsp, err)
			}
		}
		open := len(rep.GetSpans())
		_ = s.Close()
		if len(rep.GetSpans()) != open+2 {
			t.Fatalf("closing the stream finished %d spans, want its call span and the span of the attempt that opened it", len(rep.GetSpans())-open)
		}
		cancel()
	}
}

// newBreaker is a breaker with the defaults in a namespace of its own.
func newBreaker(t testing.TB) *breaker.Breaker {
	t.Helper()
	b, err := breaker.New(breaker.WithNamespace(namespace()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A go-micro caller sees the very error a bare go-micro client returns,
// of the same type (issue 25): on the grpc plugin a *errors.Error, so that
// err.(*errors.Error) and errors.Equal work; on mucp, mucp's own. And
// rpcguard's refusals are *errors.Error too.
func TestCallerGetsGoMicrosOwnErrors(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			f := newFleetOf(t, k, 1, nil)
			want := merrors.New("greeter", "no such account", 409)
			f.servers[0].failWith(want)
			msel := mselector.NewSelector(mselector.Registry(f.reg))
			t.Cleanup(func() { _ = msel.Close() })
			bare := k.client(client.PoolSize(0), client.Registry(f.reg), client.Broker(f.brk), client.ContentType(k.contentType), client.Selector(msel))
			_, bareErr := hello(bare, "greeter", "x")
			_, err := f.call("x")
			if fmt.Sprintf("%T %v", err, err) != fmt.Sprintf("%T %v", bareErr, bareErr) {
				t.Fatalf("through rpcguard: %T %v; bare go-micro: %T %v", err, err, bareErr, bareErr)
			}
			if me, ok := bareErr.(*merrors.Error); ok {
				if got, ok := err.(*merrors.Error); !ok || !merrors.Equal(got, me) || got.Detail != want.(*merrors.Error).Detail {
					t.Fatalf("err.(*errors.Error) = %v, %v; errors.Equal with the bare client's: want true", got, ok)
				}
			} else if k.name == "grpc" {
				t.Fatalf("the grpc plugin returned %T, not *errors.Error", bareErr)
			}
			if merrors.FromError(err).Code != 409 || status.Code(gomicro.FromMicro(err)) != codes.Aborted {
				t.Fatalf("%v: go-micro code %d, gRPC code %v; want 409 and Aborted", err, merrors.FromError(err).Code, status.Code(gomicro.FromMicro(err)))
			}
		})
	}
}

// go-micro's own retry settings are honoured, never ignored (issue 25):
// client.Retries(n) and per call client.WithRetries(n) make at most n+1
// attempts; a Retry func of the user's decides whether a call goes on (its
// error ends the call with that error); the engine's rules still apply (a
// call that is not idempotent is not sent twice).
func TestGoMicroRetrySettings(t *testing.T) {
	idempotent, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithBudget(retry.Budget{Off: true}), retry.WithMaxAttempts(5))
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop here")
	var asked atomic.Int64
	never := func(context.Context, client.Request, int, error) (bool, error) { asked.Add(1); return false, nil }
	always := func(context.Context, client.Request, int, error) (bool, error) { asked.Add(1); return true, nil }
	fails := func(context.Context, client.Request, int, error) (bool, error) { return true, stop }
	for _, tc := range []struct {
		name     string
		policy   *retry.Policy
		copts    []client.Option
		callOpts []client.CallOption
		attempts int64
		wantErr  error
	}{
		{name: "client.Retries(1)", policy: idempotent, copts: []client.Option{client.Retries(1)}, attempts: 2},
		{name: "client.WithRetries(0) per call", policy: idempotent, callOpts: []client.CallOption{client.WithRetries(0)}, attempts: 1},
		{name: "the engine's own without either", policy: idempotent, attempts: 4}, // 4 nodes, none tried twice
		{name: "a Retry func that says no", policy: idempotent, copts: []client.Option{client.Retry(never)}, attempts: 1},
		{name: "a Retry func that says yes, not idempotent", copts: []client.Option{client.Retry(always)}, attempts: 1},
		{name: "a Retry func's error ends the call with it", policy: idempotent, callOpts: []client.CallOption{client.WithRetry(fails)}, attempts: 1, wantErr: stop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wopts []gomicro.Option
			if tc.policy != nil {
				wopts = append(wopts, gomicro.WithRetry(tc.policy))
			}
			f := newFleet(t, 4, nil)
			for _, s := range f.servers {
				s.failWith(merrors.New("greeter", "overwhelmed", 503))
			}
			f.cli = f.client(t, wopts, tc.copts...)
			_, err := hello(f.cli, "greeter", "x", tc.callOpts...)
			if got := f.served(); got != tc.attempts || err == nil {
				t.Fatalf("%d attempts reached the servers (err %v), want %d", got, err, tc.attempts)
			}
			if tc.wantErr != nil && err != tc.wantErr {
				t.Fatalf("error %v, want the Retry func's %v", err, tc.wantErr)
			}
		})
	}
	if asked.Load() == 0 {
		t.Fatal("no Retry func was asked")
	}
}
