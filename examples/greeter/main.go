// Command greeter runs a small service with the full rpcguard stack on both
// sides, in one process: three servers that register themselves (TTL and
// renewal, grpc.health.v1, breaker and tracing interceptors) and a client
// built with rpcguard.NewClient. It makes calls, stops one server
// gracefully while calls run, and prints what happened.
//
//	go run ./examples/greeter [-jaeger http://127.0.0.1:14268/api/traces]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jaegerclient "github.com/uber/jaeger-client-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
	"github.com/rpcguard/rpcguard/tracing/jaeger"
)

func main() {
	jaegerURL := flag.String("jaeger", "", "send traces to this Jaeger collector")
	flag.Parse()

	// Tracing: a real Jaeger if asked, else spans kept in memory and counted.
	spans := jaegerclient.NewInMemoryReporter()
	jopts := []jaeger.Option{jaeger.WithInMemoryReporter(spans)}
	if *jaegerURL != "" {
		jopts = []jaeger.Option{jaeger.WithCollector(*jaegerURL)}
	}
	tracer, closer, err := jaeger.New("greeter", jopts...)
	if err != nil {
		log.Fatal(err)
	}
	defer closer.Close()
	tg, err := tracing.New(tracing.WithTracer(tracer))
	if err != nil {
		log.Fatal(err)
	}

	reg, err := health.NewMemory()
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	// Servers: tracing and a server-side breaker, registered with a TTL.
	type server struct {
		node *echo.Server
		r    *health.Registrar
	}
	var servers []server
	for i := range 3 {
		srvBrk, err := breaker.New(breaker.WithNamespace(fmt.Sprintf("greeter-server-%d", i)))
		if err != nil {
			log.Fatal(err)
		}
		n, err := echo.Start(fmt.Sprintf("greeter-%d", i),
			grpc.ChainUnaryInterceptor(tg.UnaryServerInterceptor(), srvBrk.UnaryServerInterceptor()))
		if err != nil {
			log.Fatal(err)
		}
		r, err := health.NewRegistrar(reg, "greeter", selector.Node{ID: n.ID, Addr: n.Addr},
			health.WithTTL(3*time.Second), health.WithInterval(time.Second), health.WithDrain(200*time.Millisecond))
		if err != nil {
			log.Fatal(err)
		}
		n.RegisterHealth(r.HealthServer())
		if err := r.Start(context.Background()); err != nil {
			log.Fatal(err)
		}
		servers = append(servers, server{n, r})
	}
	defer func() {
		for _, s := range servers {
			s.r.Halt()
			s.node.Kill()
		}
	}()

	// The client: one line.
	policy, err := retry.New(retry.WithIdempotent("/rpcguard.test.Echo/*"), retry.WithPerAttemptTimeout(200*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	cc, err := rpcguard.NewClient("greeter", reg, rpcguard.WithTracing(tg), rpcguard.WithRetry(policy),
		rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()

	served := map[string]int{}
	for range 30 {
		id, err := echo.Unary(context.Background(), cc, grpc.WaitForReady(true))
		if err != nil {
			log.Fatal(err)
		}
		served[id]++
	}
	var ids []string
	for id := range served {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	fmt.Print("30 calls served by:")
	for i, id := range ids {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Printf("%s %s %d", sep, id, served[id])
	}
	fmt.Println()

	// Stop greeter-0 gracefully while 4 callers run.
	var failed, calls atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := echo.Unary(context.Background(), cc); err != nil {
					failed.Add(1)
				}
				calls.Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // calls under way (a demo, not a test)
	leaving := servers[0]
	if err := leaving.r.Stop(context.Background()); err != nil { // NOT_SERVING, deregister, drain
		log.Fatal(err)
	}
	leaving.node.Stop() // then stop accepting, letting running calls finish
	time.Sleep(200 * time.Millisecond)
	stop()
	wg.Wait()
	fmt.Printf("graceful stop of greeter-0 during %d calls: %d failed\n", calls.Load(), failed.Load())
	if *jaegerURL == "" {
		fmt.Printf("%d spans recorded (pass -jaeger to send them to Jaeger)\n", len(spans.GetSpans()))
	}
}
