package gomicro_test

import (
	"context"
	"net/textproto"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opentracing/opentracing-go"
	jaegerclient "github.com/uber/jaeger-client-go"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/tracing"
)

// Relay is a go-micro handler that calls greeter's Greeter.Hello with its
// own context, as a service in the middle of a chain does.
type Relay struct{ cli client.Client }

func (r *Relay) Hello(ctx context.Context, req *Req, rsp *Rsp) error {
	return r.cli.Call(ctx, r.cli.NewRequest("greeter", "Greeter.Hello", req), rsp)
}

// relayChain starts greeter (one node) and front (a Relay to greeter) on
// k and reg, their handlers and clients wrapped by gomicro with tg, and
// returns a gomicro client of front.
func relayChain(t *testing.T, k kind, reg registry.Registry, tg *tracing.Tracing) client.Client {
	t.Helper()
	wopts := []gomicro.Option{gomicro.WithTracing(tg)}
	hw, err := gomicro.NewHandlerWrapper(gomicro.WithTracing(tg))
	if err != nil {
		t.Fatal(err)
	}
	f := newFleetOn(t, k, reg, 1, wopts, server.WrapHandler(hw))
	front := k.server(server.Name("front"), server.Id("front-0"), server.Address("127.0.0.1:0"),
		server.Registry(f.reg), server.Broker(f.brk), server.RegisterTTL(time.Minute), server.WrapHandler(hw))
	if err := front.Handle(front.NewHandler(&Relay{cli: f.client(t, wopts)})); err != nil {
		t.Fatal(err)
	}
	if err := front.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = front.Stop() })
	return f.client(t, wopts)
}

// client → front → greeter, all on gomicro: in every one of 40 traces the
// greeter's server span is the child of the attempt span of the front's
// call (go-micro relays the front's incoming Uber-Trace-Id into its
// handler's context; the wrapper's own header must be the only one sent).
// On mucp and the grpc plugins with go-micro's memory registry, and on mucp
// with its etcd plugin on a real embedded etcd.
func TestTraceParentsAcrossTwoHops(t *testing.T) {
	type registryKind struct {
		name string
		k    kind
		reg  func(t *testing.T) registry.Registry
	}
	memory := func(*testing.T) registry.Registry { return newMicroRegistry() }
	for _, rk := range []registryKind{{"mucp", mucp, memory}, {"grpc", grpcKind, memory}, {"mucp etcd plugin", mucp, etcdPluginRegistry}} {
		k := rk.k
		t.Run(rk.name, func(t *testing.T) {
			tg, rep := inMemoryTracing(t, "hops")
			top := relayChain(t, k, rk.reg(t), tg)
			for i := range 40 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				var rsp Rsp
				err := top.Call(ctx, top.NewRequest("front", "Relay.Hello", &Req{Name: "x"}), &rsp)
				cancel()
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			traces := map[uint64]map[string]*jaegerclient.Span{}
			for _, s := range rep.GetSpans() {
				js := s.(*jaegerclient.Span)
				id := js.SpanContext().TraceID().Low
				if traces[id] == nil {
					traces[id] = map[string]*jaegerclient.Span{}
				}
				traces[id][js.OperationName()] = js
			}
			if len(traces) != 40 {
				t.Fatalf("%d traces for 40 calls, want 40", len(traces))
			}
			wrong := 0
			for _, tr := range traces {
				hop := tr["greeter Greeter.Hello attempt"]
				srv := tr["Greeter.Hello"] // the server span
				frontSrv, frontAttempt := tr["Relay.Hello"], tr["front Relay.Hello attempt"]
				if hop == nil || srv == nil || frontSrv == nil || frontAttempt == nil ||
					srv.SpanContext().ParentID() != hop.SpanContext().SpanID() ||
					frontSrv.SpanContext().ParentID() != frontAttempt.SpanContext().SpanID() {
					wrong++
					if wrong == 1 {
						for name, sp := range tr {
							t.Logf("%s: %v parent %v", name, sp.SpanContext().SpanID(), sp.SpanContext().ParentID())
						}
					}
				}
			}
			if wrong > 0 {
				t.Fatalf("%d of 40 traces had a server span under the wrong parent (or missing)", wrong)
			}
		})
	}
}

// A caller whose context carries no span but go-micro metadata with a
// trace (the micro API gateway hands its caller's trace on that way,
// keys capitalised): the call span continues that trace, every time.
func TestTraceParentFromMetadataOnly(t *testing.T) {
	tg, tracer, rep := inMemoryTracer(t, "gateway")
	f := newFleet(t, 1, []gomicro.Option{gomicro.WithTracing(tg)})
	for i := range 40 {
		gw := tracer.StartSpan("gateway")
		carrier := opentracing.TextMapCarrier{}
		if err := tracer.Inject(gw.Context(), opentracing.TextMap, carrier); err != nil {
			t.Fatal(err)
		}
		md := metadata.Metadata{}
		for k, v := range carrier {
			md[textproto.CanonicalMIMEHeaderKey(k)] = v // as go-micro sends it: Uber-Trace-Id
		}
		ctx, cancel := context.WithTimeout(metadata.NewContext(context.Background(), md), 5*time.Second)
		var rsp Rsp
		err := f.cli.Call(ctx, f.cli.NewRequest("greeter", "Greeter.Hello", &Req{Name: "x"}), &rsp)
		cancel()
		gw.Finish()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		var call *jaegerclient.Span
		for _, s := range rep.GetSpans() {
			if js := s.(*jaegerclient.Span); js.OperationName() == "greeter Greeter.Hello" {
				call = js
			}
		}
		gwc := gw.Context().(jaegerclient.SpanContext)
		if call == nil || call.SpanContext().TraceID() != gwc.TraceID() || call.SpanContext().ParentID() != gwc.SpanID() {
			t.Fatalf("call %d: the call span does not continue the gateway's trace", i)
		}
		rep.Reset()
	}
}

// Pub/sub on go-micro's HTTP broker (issue 25): Publish through the client
// wrapper has a span and a circuit of its topic; each message a subscriber
// handles has a server span, child of the publish span, through
// ServiceOptions' subscriber wrapper, on mucp and the grpc plugins.
func TestPublishAndSubscribeAreTraced(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			tg, rep := inMemoryTracing(t, "pubsub")
			brk := newBreaker(t)
			reg := registry.NewMemoryRegistry()
			subBroker := broker.NewBroker(broker.Registry(reg), broker.Addrs("127.0.0.1:0"))
			pubBroker := broker.NewBroker(broker.Registry(reg), broker.Addrs("127.0.0.1:0"))
			if err := pubBroker.Connect(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = pubBroker.Disconnect() })
			sw, err := gomicro.NewSubscriberWrapper(gomicro.WithTracing(tg), gomicro.WithBreaker(brk))
			if err != nil {
				t.Fatal(err)
			}
			var got atomic.Int64
			srv := k.server(server.Name("audit"), server.Id("audit-0"), server.Address("127.0.0.1:0"),
				server.Registry(reg), server.Broker(subBroker), server.RegisterTTL(time.Minute), server.WrapSubscriber(sw))
			if err := srv.Subscribe(srv.NewSubscriber("user.login", func(context.Context, *Req) error { got.Add(1); return nil })); err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = srv.Stop() })
			w, err := gomicro.NewClientWrapper(gomicro.WithTracing(tg), gomicro.WithBreaker(brk))
			if err != nil {
				t.Fatal(err)
			}
			cli := k.client(client.Registry(reg), client.Broker(pubBroker), client.ContentType(k.contentType), client.Wrap(w))
			for range 5 {
				if err := cli.Publish(context.Background(), cli.NewMessage("user.login", &Req{Name: "x"})); err != nil {
					t.Fatal(err)
				}
			}
			testcluster.WaitFor(t, 5*time.Second, "5 messages handled", func() bool { return got.Load() == 5 })
			testcluster.WaitFor(t, 5*time.Second, "10 spans", func() bool { return len(rep.GetSpans()) == 10 })
			pubs := map[jaegerclient.SpanID]bool{}
			var subs []*jaegerclient.Span
			for _, s := range rep.GetSpans() {
				switch js := s.(*jaegerclient.Span); js.OperationName() {
				case "publish user.login":
					pubs[js.SpanContext().SpanID()] = true
				case "subscribe user.login":
					subs = append(subs, js)
				}
			}
			if len(pubs) != 5 || len(subs) != 5 {
				t.Fatalf("%d publish and %d subscribe spans, want 5 and 5", len(pubs), len(subs))
			}
			for _, s := range subs {
				if !pubs[s.SpanContext().ParentID()] {
					t.Fatal("a subscribe span is not the child of a publish span")
				}
			}
			circuits := map[string]bool{}
			for _, c := range brk.Snapshot() {
				circuits[c.Command] = true
			}
			if !circuits["publish user.login"] || !circuits["subscribe user.login"] {
				t.Fatalf("circuits %v: want publish user.login and subscribe user.login", circuits)
			}
		})
	}
}
