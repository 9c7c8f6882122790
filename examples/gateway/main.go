// Command gateway is an HTTP gateway in front of a gRPC service: tracing and
// a per-route breaker on the HTTP side, the rpcguard stack on the gRPC side,
// and the Hystrix dashboard stream mounted at /hystrix.stream.
//
//	go run ./examples/gateway          # serves a few requests, prints them, exits
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

	// The backend: two gRPC nodes, one failing.
	var nodes []selector.Node
	for i := range 2 {
		n, err := echo.Start(fmt.Sprintf("backend-%d", i))
		if err != nil {
			log.Fatal(err)
		}
		defer n.Kill()
		if i == 1 {
			n.SetFault(echo.FailWith(codes.Unavailable))
		}
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
		rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()

	// The gateway: one breaker circuit per route pattern.
	brk, err := breaker.New(breaker.WithNamespace("gateway"))
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

	for _, name := range []string{"ada", "grace", "edsger", "barbara"} {
		resp, err := http.Get(base + "/hello/" + name)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("GET /hello/%s -> %d %s", name, resp.StatusCode, body)
	}

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
