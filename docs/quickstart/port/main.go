// The seeds' go-micro set-up ported to gomicro (docs/porting-go-micro.md):
// the hystrix and opentracing wrappers, the roundrobin wrapper,
// client.Retries, RegisterTTL/RegisterInterval/RegisterCheck, and the
// gateway's hystrix handler, each replaced by its gomicro equivalent.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/uber/jaeger-client-go"
	micro "go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
	tjaeger "github.com/rpcguard/rpcguard/tracing/jaeger"
)

// Greeter is the service's handler.
type Greeter struct{}

// Req and Rsp travel as JSON.
type Req struct{ Name string }

// Rsp is the answer.
type Rsp struct{ Msg string }

// Hello greets.
func (Greeter) Hello(_ context.Context, req *Req, rsp *Rsp) error {
	rsp.Msg = "hello " + req.Name
	return nil
}

func main() {
	logger.DefaultLogger = logger.NewLogger(logger.WithLevel(logger.WarnLevel))
	brk, tr := broker.NewMemoryBroker(), transport.NewHTTPTransport()

	// registry/etcd plugin + RegisterTTL/RegisterInterval/RegisterCheck →
	// an rpcguard registry (health/etcd's etcd.New for etcd) kept by
	// gomicro.NewRegistry: renewals every third of the TTL with jitter, and
	// a failing check takes the node out once, until it passes.
	mem, err := health.NewMemory()
	if err != nil {
		log.Fatal(err)
	}
	defer mem.Close()
	reg, err := gomicro.NewRegistry(mem, health.WithCheck(func(context.Context) error { return nil }, time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	// The seeds' opentracing wrapper → one tracing for the whole stack (a
	// jaeger-client-go tracer; here reporting to memory).
	spans := jaeger.NewInMemoryReporter()
	tracer, closer, err := tjaeger.New("port", tjaeger.WithInMemoryReporter(spans))
	if err != nil {
		log.Fatal(err)
	}
	defer closer.Close()
	tg, err := tracing.New(tracing.WithTracer(tracer))
	if err != nil {
		log.Fatal(err)
	}
	// hystrix.ConfigureCommand → a breaker with the same settings, per
	// "SERVICE ENDPOINT" (a 404 is not a failure; no goroutines per call).
	brkr, err := breaker.New(breaker.WithNamespace("port"),
		breaker.WithSettings(breaker.Settings{Timeout: 2 * time.Second, VolumeThreshold: 20, ErrorPercent: 50, SleepWindow: 5 * time.Second}))
	if err != nil {
		log.Fatal(err)
	}

	// The service: micro.WrapHandler(opentracing, hystrix) → ServiceOptions'
	// handler wrapper (server span, breaker per endpoint).
	srv := server.NewServer(server.Name("greeter"), server.Id("greeter-0"), server.Address("127.0.0.1:0"),
		server.Registry(reg), server.Broker(brk), server.Transport(tr), server.RegisterTTL(30*time.Second))
	greeterOpts, closeGreeter, err := gomicro.ServiceOptions(reg, gomicro.WithTracing(tg), gomicro.WithBreaker(brkr))
	if err != nil {
		log.Fatal(err)
	}
	defer closeGreeter()
	greeterCli := client.NewClient(client.Registry(reg), client.Broker(brk), client.Transport(tr))
	greeter := micro.NewService(append([]micro.Option{micro.Name("greeter"), micro.Client(greeterCli), micro.Server(srv),
		micro.Registry(reg), micro.Broker(brk), micro.Transport(tr)}, greeterOpts...)...)
	if err := greeter.Server().Handle(greeter.Server().NewHandler(Greeter{})); err != nil {
		log.Fatal(err)
	}
	if err := greeter.Server().Start(); err != nil {
		log.Fatal(err)
	}
	defer greeter.Server().Stop()

	// The client: micro.WrapClient(roundrobin, hystrix, opentracing) and
	// client.Retries(3) → ServiceOptions with the same strategy; Retries(3)
	// keeps its meaning (at most 4 attempts) on rpcguard's retry engine.
	cli := client.NewClient(client.Registry(reg), client.Broker(brk), client.Transport(tr),
		client.ContentType("application/json"), client.Retries(3))
	callerOpts, closeCaller, err := gomicro.ServiceOptions(reg, gomicro.WithTracing(tg), gomicro.WithBreaker(brkr),
		gomicro.WithSelectorOptions(selector.WithStrategy(selector.RoundRobin), selector.WithEjection(selector.DefaultEjection())))
	if err != nil {
		log.Fatal(err)
	}
	defer closeCaller()
	caller := micro.NewService(append([]micro.Option{micro.Name("gateway"), micro.Client(cli),
		micro.Registry(reg), micro.Broker(brk), micro.Transport(tr)}, callerOpts...)...)

	// The gateway's hystrix.StreamHandler-wrapped routes → the breaker's
	// HTTP middleware (one circuit per route pattern) and tracing's.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /greeter/{name}", func(w http.ResponseWriter, r *http.Request) {
		var rsp Rsp
		c := caller.Client()
		if err := c.Call(r.Context(), c.NewRequest("greeter", "Greeter.Hello", &Req{Name: r.PathValue("name")}), &rsp); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, rsp.Msg)
	})
	gw := httptest.NewServer(tg.Middleware(brkr.Middleware(mux)))
	defer gw.Close()

	res, err := http.Get(gw.URL + "/greeter/ada")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Println(res.StatusCode, string(body))    // 200 hello ada
	fmt.Println("spans:", len(spans.GetSpans())) // spans: 4 (the gateway's, the call's, its attempt's, the greeter's)
}
