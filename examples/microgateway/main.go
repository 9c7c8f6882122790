// Command microgateway is the seeds' API gateway, on rpcguard: an HTTP
// gateway in front of go-micro v4 services, with tracing and a per-route
// breaker on the HTTP side and the gomicro client (rpcguard's selector,
// retries and breaker) on the go-micro side. Three greeter nodes serve,
// and a fourth died without deregistering. It sends requests in three
// phases (healthy, every node failing, healthy again) and prints what the
// callers got, the route's circuit, and which nodes served.
//
//	go run ./examples/microgateway
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/tracing"
)

// Greeter is a go-micro handler that counts its calls and fails them while
// failing is set.
type Greeter struct {
	id      string
	calls   atomic.Int64
	failing atomic.Bool
}

// Req and Rsp travel as JSON.
type Req struct{ Name string }

// Rsp is the answer.
type Rsp struct{ Msg, From string }

// Hello greets, or fails with a 500 (its database is down).
func (g *Greeter) Hello(_ context.Context, req *Req, rsp *Rsp) error {
	g.calls.Add(1)
	if g.failing.Load() {
		return merrors.InternalServerError("greeter", "database unreachable")
	}
	rsp.Msg, rsp.From = "hello "+req.Name, g.id
	return nil
}

func main() {
	logger.DefaultLogger = logger.NewLogger(logger.WithLevel(logger.ErrorLevel))
	// Explicit registry, broker and transport: go-micro's defaults are
	// global and its default registry multicasts.
	reg, bus, tr := registry.NewMemoryRegistry(), broker.NewMemoryBroker(), transport.NewHTTPTransport()

	var greeters []*Greeter
	for i := range 3 {
		g := &Greeter{id: fmt.Sprintf("greeter-%d", i)}
		srv := server.NewServer(server.Name("greeter"), server.Id(fmt.Sprint(i)), server.Address("127.0.0.1:0"),
			server.Registry(reg), server.Broker(bus), server.Transport(tr))
		if err := srv.Handle(srv.NewHandler(g)); err != nil {
			log.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			log.Fatal(err)
		}
		defer srv.Stop()
		greeters = append(greeters, g)
	}
	// A node that died without deregistering: its port refuses connections.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	if err := reg.Register(&registry.Service{Name: "greeter", Nodes: []*registry.Node{{Id: "greeter-dead", Address: dead}}}); err != nil {
		log.Fatal(err)
	}

	// The go-micro side: rpcguard's selector and client wrapper. Greeter.Hello
	// may be repeated; each attempt is bounded (and the server told so).
	tg, err := tracing.New() // the global tracer: set one with opentracing.SetGlobalTracer, or pass WithTracer
	if err != nil {
		log.Fatal(err)
	}
	policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithPerAttemptTimeout(time.Second))
	if err != nil {
		log.Fatal(err)
	}
	sel, err := gomicro.NewSelector(reg)
	if err != nil {
		log.Fatal(err)
	}
	defer sel.Close()
	wrap, err := gomicro.NewClientWrapper(gomicro.WithRetry(policy), gomicro.WithTracing(tg))
	if err != nil {
		log.Fatal(err)
	}
	cli := client.NewClient(client.Selector(sel), client.Registry(reg), client.Broker(bus), client.Transport(tr),
		client.ContentType("application/json"), client.Wrap(wrap))

	// The HTTP side: one breaker circuit per route pattern, judging after
	// 10 requests and probing 1 s after it opened.
	brk, err := breaker.New(breaker.WithNamespace("microgateway"),
		breaker.WithSettings(breaker.Settings{VolumeThreshold: 10, SleepWindow: time.Second}))
	if err != nil {
		log.Fatal(err)
	}
	api := http.NewServeMux()
	api.HandleFunc("GET /greeter/{name}", func(w http.ResponseWriter, r *http.Request) {
		var rsp Rsp
		err := cli.Call(r.Context(), cli.NewRequest("greeter", "Greeter.Hello", &Req{Name: r.PathValue("name")}), &rsp)
		if err != nil {
			code := http.StatusBadGateway
			if merrors.FromError(err).Id == gomicro.IDBreaker { // the client's own circuit for the service
				code = http.StatusServiceUnavailable
			}
			http.Error(w, merrors.FromError(err).Detail, code)
			return
		}
		fmt.Fprintf(w, "%s, from %s\n", rsp.Msg, rsp.From)
	})
	lis, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	httpSrv := &http.Server{Handler: tg.Middleware(brk.Middleware(api)), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = httpSrv.Serve(lis) }()
	defer httpSrv.Close()
	base := "http://" + lis.Addr().String()
	fmt.Println("gateway on", base, "in front of 3 go-micro greeter nodes and 1 dead one still registered")

	fmt.Printf("\n%-10s %8s %5s %5s %5s  %-8s  %s\n", "phase", "requests", "200", "502", "503", "circuit", "served by")
	phase := func(name string, requests int, pace time.Duration) {
		before := make([]int64, len(greeters))
		for i, g := range greeters {
			before[i] = g.calls.Load()
		}
		got := map[int]int{}
		for i := range requests {
			time.Sleep(pace) // an even flow of callers, not one burst
			resp, err := http.Get(fmt.Sprintf("%s/greeter/user%d", base, i))
			if err != nil {
				log.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got[resp.StatusCode]++
		}
		circuit := "closed"
		if brk.IsOpen("GET /greeter/{name}") {
			circuit = "open"
		}
		var served []string
		for i, g := range greeters {
			if n := g.calls.Load() - before[i]; n > 0 {
				served = append(served, fmt.Sprintf("%s %d", g.id, n))
			}
		}
		fmt.Printf("%-10s %8d %5d %5d %5d  %-8s  %s\n", name, requests, got[200], got[502], got[503], circuit, strings.Join(served, ", "))
	}
	phase("healthy", 30, 0) // the dead node is routed around: every request is served
	for _, g := range greeters {
		g.failing.Store(true)
	}
	phase("outage", 60, 5*time.Millisecond) // 502s until the circuit opens, then 503s at once
	for _, g := range greeters {
		g.failing.Store(false)
	}
	// Wait out the sleep window: then one request probes, and its success
	// closes the circuit.
	for deadline := time.Now().Add(10 * time.Second); brk.IsOpen("GET /greeter/{name}") && time.Now().Before(deadline); {
		resp, err := http.Get(base + "/greeter/probe")
		if err == nil {
			resp.Body.Close()
		}
		time.Sleep(100 * time.Millisecond) // pace the probes; the condition is the circuit's state
	}
	phase("recovered", 30, 0)
}
