// Command gateway is an HTTP gateway in front of a gRPC service: tracing and
// a per-route breaker on the HTTP side, the rpcguard stack on the gRPC side,
// and the Hystrix dashboard stream mounted at /hystrix.stream. It sends
// requests in three phases (the backends healthy, all of them failing,
// healthy again) and prints what the callers got, the route's circuit, and
// which backends served.
//
//	go run ./examples/gateway          # the three phases, then exits
//	go run ./examples/gateway -serve   # keeps serving; point the Hystrix dashboard at /hystrix.stream
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
)

func main() {
	serve := flag.Bool("serve", false, "keep serving on the printed address")
	flag.Parse()

	// The backend: three gRPC nodes.
	var nodes []selector.Node
	var backends []*echo.Server
	for i := range 3 {
		n, err := echo.Start(fmt.Sprintf("backend-%d", i))
		if err != nil {
			log.Fatal(err)
		}
		defer n.Kill()
		backends = append(backends, n)
		nodes = append(nodes, selector.Node{ID: n.ID, Addr: n.Addr})
	}
	src, err := selector.NewStatic(nodes...)
	if err != nil {
		log.Fatal(err)
	}

	tg, err := tracing.New() // the global tracer: set one with opentracing.SetGlobalTracer, or pass WithTracer
	if err != nil {
		log.Fatal(err)
	}
	policy, err := retry.New(retry.WithIdempotent("/rpcguard.test.Echo/*"))
	if err != nil {
		log.Fatal(err)
	}
	backend, err := rpcguard.NewClient("echo", src, rpcguard.WithTracing(tg), rpcguard.WithRetry(policy),
		rpcguard.WithBalancerConfig(`{"strategy":"round_robin"}`), // spread evenly, for the table
		rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()

	// The gateway: one breaker circuit per route pattern, judging after 10
	// requests and probing 1 s after it opened.
	brk, err := breaker.New(breaker.WithNamespace("gateway"),
		breaker.WithSettings(breaker.Settings{VolumeThreshold: 10, SleepWindow: time.Second}))
	if err != nil {
		log.Fatal(err)
	}
	api := http.NewServeMux()
	api.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		id, err := echo.Unary(r.Context(), backend)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "hello %s, from %s\n", r.PathValue("name"), id)
	})
	stream := breaker.NewStreamHandler()
	defer stream.Close()
	root := http.NewServeMux()
	root.Handle("/hystrix.stream", stream)
	root.Handle("/", tg.Middleware(brk.Middleware(api)))

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: root, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Close()
	base := "http://" + lis.Addr().String()
	fmt.Println("gateway on", base, "- dashboard stream at", base+"/hystrix.stream")

	fmt.Printf("\n%-10s %8s %5s %5s %5s  %-8s  %s\n", "phase", "requests", "200", "502", "503", "circuit", "served by")
	phase := func(name string, requests int, pace time.Duration) {
		before := make([]int64, len(backends))
		for i, b := range backends {
			before[i] = b.Calls()
		}
		got := map[int]int{}
		for i := range requests {
			time.Sleep(pace) // an even flow of callers, not one burst
			resp, err := http.Get(fmt.Sprintf("%s/hello/user%d", base, i))
			if err != nil {
				log.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got[resp.StatusCode]++
		}
		circuit := "closed"
		if brk.IsOpen("GET /hello/{name}") {
			circuit = "open"
		}
		var served []string
		for i, b := range backends {
			if n := b.Calls() - before[i]; n > 0 {
				served = append(served, fmt.Sprintf("%s %d", b.ID, n))
			}
		}
		fmt.Printf("%-10s %8d %5d %5d %5d  %-8s  %s\n", name, requests, got[200], got[502], got[503], circuit, strings.Join(served, ", "))
	}
	phase("healthy", 30, 0)
	for _, b := range backends {
		b.SetFault(echo.FailWith(codes.Unavailable))
	}
	phase("outage", 60, 5*time.Millisecond) // 502s until the circuit opens, then 503s at once
	for _, b := range backends {
		b.SetFault(nil)
	}
	// Wait out the sleep window: then one request probes, and its success
	// closes the circuit.
	for deadline := time.Now().Add(10 * time.Second); brk.IsOpen("GET /hello/{name}") && time.Now().Before(deadline); {
		resp, err := http.Get(base + "/hello/probe")
		if err == nil {
			resp.Body.Close()
		}
		time.Sleep(100 * time.Millisecond) // pace the probes; the condition is the circuit's state
	}
	phase("recovered", 30, 0)
	fmt.Println()

	// One frame of the dashboard stream, as the Hystrix dashboard reads it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/hystrix.stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.Contains(line, `"type":"HystrixCommand"`) && strings.Contains(line, "gateway/") {
			fmt.Println("dashboard frame:", line[:min(len(line), 120)]+"...")
			break
		}
	}
	resp.Body.Close()

	if *serve {
		fmt.Println("serving until interrupted")
		select {}
	}
}
