// Command faultdemo shows what rpcguard does under faults, with numbers.
//
// It starts a 3-node gRPC cluster in one process, registered with a TTL in
// the in-memory registry (or an embedded etcd, with -etcd), injects one
// fault per scenario with package faultinject, and makes the same calls
// through a bare gRPC client (round robin, the same resolver), through
// rpcguard's retry interceptor alone (round robin, no ejection), and through
// the rpcguard stack (rpcguard.NewClient: p2c with ejection, breaker,
// retries with a per-attempt timeout and hedging, tracing). Most scenarios
// run on go-micro v4 services too, called by go-micro's own client and by
// go-micro with rpcguard's gomicro package. It prints, per
// scenario and client: success, p50 and p99 latency, attempts reaching
// servers per call, and the breaker's state.
//
//	go run ./examples/faultdemo                   # the table
//	go run ./examples/faultdemo -json             # the same, as JSON
//	go run -tags etcd ./examples/faultdemo -etcd  # on an embedded etcd
//	go run -tags micro5 ./examples/faultdemo      # the go-micro rows on go-micro v5
//	go run ./examples/faultdemo -debug 127.0.0.1:8080  # its debug page and /metrics while it runs
//	go run ./examples/faultdemo -jaeger http://127.0.0.1:14268/api/traces
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/opentracing/opentracing-go"

	"github.com/rpcguard/rpcguard/metrics"
	"github.com/rpcguard/rpcguard/tracing/jaeger"
)

func main() {
	jsonOut := flag.Bool("json", false, "write the results as JSON")
	useEtcd := flag.Bool("etcd", false, "register the nodes in an embedded etcd instead of the in-memory registry")
	jaegerURL := flag.String("jaeger", "", "send the rpcguard client's traces to this Jaeger collector (http://HOST:14268/api/traces)")
	calls := flag.Int("calls", 300, "calls per scenario and client")
	runFor := flag.Duration("for", 0, "drive each scenario and client for this long (the steady state) instead of -calls calls")
	only := flag.String("only", "", "run only these scenarios (comma-separated names)")
	noMicro := flag.Bool("nomicro", false, "leave out the go-micro rows")
	debugAddr := flag.String("debug", "", "serve rpcguard's debug page (/debug/rpcguard) and /metrics on this address (127.0.0.1:PORT) while the scenarios run")
	flag.Parse()
	if *calls < 10 {
		log.Fatalf("faultdemo: -calls must be at least 10, got %d", *calls)
	}

	if !*noMicro {
		quietMicro()
	}
	var tracer opentracing.Tracer = opentracing.NoopTracer{}
	if *jaegerURL != "" {
		tr, closer, err := jaeger.New("faultdemo", jaeger.WithCollector(*jaegerURL))
		if err != nil {
			log.Fatal(err)
		}
		defer closer.Close()
		tracer = tr
	}
	env, err := newEnv(*useEtcd, tracer)
	if err != nil {
		log.Fatal(err)
	}
	defer env.close()
	env.runFor = *runFor
	if *only != "" {
		scenarios = slices.DeleteFunc(scenarios, func(sc scenario) bool { return !slices.Contains(strings.Split(*only, ","), sc.name) })
		if len(scenarios) == 0 {
			log.Fatalf("faultdemo: -only %q names no scenario", *only)
		}
	}
	if *debugAddr != "" {
		stop, err := env.serveDebug(*debugAddr)
		if err != nil {
			log.Fatal(err)
		}
		defer stop()
	}

	start := time.Now()
	fmt.Fprintf(os.Stderr, "faultdemo: %d scenarios × %d clients × %d calls ...\n", len(scenarios), len(clients), *calls)
	var results []result
	for _, sc := range scenarios {
		for _, client := range clients {
			var r result
			var err error
			if client == clientMicro || client == clientGoMicro {
				if *noMicro || !sc.onMicro() {
					continue
				}
				r, err = env.runMicro(sc, client, *calls)
			} else {
				r, err = env.run(sc, client, *calls)
			}
			if err != nil {
				log.Fatalf("faultdemo: %s/%s: %v", sc.name, client, err)
			}
			results = append(results, r)
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"registry": env.registryName, "calls": *calls, "results": results}); err != nil {
			log.Fatal(err)
		}
		return
	}
	printTable(os.Stdout, env.registryName, *calls, results, time.Since(start))
}

func printTable(out io.Writer, registry string, calls int, results []result, took time.Duration) {
	fmt.Fprintf(out, "\nEach scenario: a fresh cluster (3 gRPC nodes on 127.0.0.1 unless it says), %s\n", registry)
	fmt.Fprintf(out, "registry, %d calls per client, 8 callers (overload: 32), 500 ms deadline per call.\n\n", calls)
	fmt.Fprintln(out, "Clients: bare = gRPC's round_robin; retry = rpcguard's retry interceptor alone;")
	fmt.Fprintln(out, "         rpcguard = rpcguard.NewClient (p2c, ejection, breaker, retry, hedging);")
	fmt.Fprintf(out, "         go-micro = go-micro %s services and client as the seeds ran them (its\n", microVersion)
	fmt.Fprintln(out, "         selector, Retries(3)); gomicro = the same with rpcguard's gomicro selector")
	fmt.Fprintln(out, "         and client wrapper (the rpcguard client's settings).")
	fmt.Fprintln(out, "Columns: ok = calls that succeeded; p50, p99 = latency; attempts = attempts that")
	fmt.Fprintln(out, "         reached a server per call (the load the fleet saw); breaker = the rpcguard")
	fmt.Fprintln(out, "         client's circuit at the end.")
	for i := 0; i < len(results); {
		sc := results[i].Scenario
		fmt.Fprintf(out, "\n%s: %s\n", sc, describe(sc))
		fmt.Fprintf(out, "  %-9s %7s %7s %7s %9s  %s\n", "client", "ok", "p50", "p99", "attempts", "breaker")
		byClient := map[string]result{}
		for ; i < len(results) && results[i].Scenario == sc; i++ {
			r := results[i]
			byClient[r.Client] = r
			fmt.Fprintf(out, "  %-9s %6.1f%% %7s %7s %9.2f  %s\n", r.Client, r.SuccessPct, ms(r.P50MS), ms(r.P99MS), r.AttemptsPerCall, r.Breaker)
			if r.Note != "" {
				fmt.Fprintf(out, "  %-9s %s\n", "", r.Note)
			}
		}
		fmt.Fprintf(out, "  => %s\n", summary(byClient))
	}
	fmt.Fprintf(out, "\nran in %v\n", took.Round(100*time.Millisecond))
}

// describe says what a scenario's fault is, in a line.
func describe(name string) string {
	for _, sc := range scenarios {
		if sc.name == name {
			return sc.what
		}
	}
	return ""
}

// summary tells a scenario's story in a line: what bare gRPC lost, what
// rpcguard lost, and the attempts it spared the fleet.
func summary(r map[string]result) string {
	bare, guard := r[clientBare], r[clientRPCGuard]
	if bare.Calls != guard.Calls { // -for: each client made as many calls as it could
		line := fmt.Sprintf("bare gRPC served %.1f%% of its %d calls; rpcguard %.1f%% of %d, with %.2f attempts per call",
			bare.SuccessPct, bare.Calls, guard.SuccessPct, guard.Calls, guard.AttemptsPerCall)
		if plain, ok := r[clientMicro]; ok {
			line += fmt.Sprintf("\n     go-micro served %.1f%%; with gomicro %.1f%%", plain.SuccessPct, r[clientGoMicro].SuccessPct)
		}
		return line
	}
	lost := func(x result) int { return x.Calls - int(x.SuccessPct*float64(x.Calls)/100+0.5) }
	attempts := func(x result) int { return int(x.AttemptsPerCall*float64(x.Calls) + 0.5) }
	d := attempts(bare) - attempts(guard)
	spared := fmt.Sprintf("sent %d fewer attempts", d)
	switch {
	case d < 0:
		spared = fmt.Sprintf("sent %d more attempts (retries, hedges)", -d)
	case d == 0:
		spared = "sent as many attempts"
	}
	line := fmt.Sprintf("bare gRPC lost %d calls; rpcguard lost %d and %s", lost(bare), lost(guard), spared)
	if plain, ok := r[clientMicro]; ok {
		line += fmt.Sprintf("\n     go-micro lost %d calls; with gomicro %d", lost(plain), lost(r[clientGoMicro]))
	}
	return line
}

func ms(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.0fms", v)
}

// serveDebug serves the rpcguard client's debug page and metrics on addr
// while the scenarios run.
func (e *env) serveDebug(addr string) (stop func(), _ error) {
	e.obs = metrics.New()
	mux := http.NewServeMux()
	mux.Handle("/debug/rpcguard", e.obs.DebugHandler())
	mux.Handle("/metrics", e.obs.Handler())
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultdemo: -debug: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	fmt.Fprintf(os.Stderr, "faultdemo: debug page at http://%s/debug/rpcguard, metrics at http://%s/metrics\n", lis.Addr(), lis.Addr())
	return func() { _ = srv.Close() }, nil
}
