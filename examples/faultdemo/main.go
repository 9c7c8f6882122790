// Command faultdemo shows what rpcguard does under faults, with numbers.
//
// It starts a 3-node gRPC cluster in one process, registered with a TTL in
// the in-memory registry (or an embedded etcd, with -etcd), injects one
// fault per scenario with package faultinject, and makes the same calls
// through a bare gRPC client (round robin, the same resolver), through
// rpcguard's retry interceptor alone (round robin, no ejection), and through
// the rpcguard stack (rpcguard.NewClient: p2c with ejection, breaker,
// retries with a per-attempt timeout and hedging, tracing). It prints, per
// scenario and client: success, p50 and p99 latency, attempts reaching
// servers per call, and the breaker's state.
//
//	go run ./examples/faultdemo                   # the table
//	go run ./examples/faultdemo -json             # the same, as JSON
//	go run -tags etcd ./examples/faultdemo -etcd  # on an embedded etcd
//	go run ./examples/faultdemo -jaeger http://127.0.0.1:14268/api/traces
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"text/tabwriter"
	"time"

	"github.com/opentracing/opentracing-go"

	"github.com/rpcguard/rpcguard/tracing/jaeger"
)

func main() {
	jsonOut := flag.Bool("json", false, "write the results as JSON")
	useEtcd := flag.Bool("etcd", false, "register the nodes in an embedded etcd instead of the in-memory registry")
	jaegerURL := flag.String("jaeger", "", "send the rpcguard client's traces to this Jaeger collector (http://HOST:14268/api/traces)")
	calls := flag.Int("calls", 300, "calls per scenario and client")
	flag.Parse()
	if *calls < 10 {
		log.Fatalf("faultdemo: -calls must be at least 10, got %d", *calls)
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

	start := time.Now()
	fmt.Fprintf(os.Stderr, "faultdemo: %d scenarios × %d clients × %d calls ...\n", len(scenarios), len(clients), *calls)
	var results []result
	for _, sc := range scenarios {
		for _, client := range clients {
			r, err := env.run(sc, client, *calls)
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
	fmt.Fprintf(out, "\n3 gRPC nodes on 127.0.0.1 (unless the scenario says), %s registry; %d calls per row, 8 at a time\n(overload: 32), 500 ms deadline each.\n\n", registry, calls)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tclient\tsuccess\tp50\tp99\tattempts/call\tbreaker\tnote\t")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t%s\t%.1f%%\t%s\t%s\t%.2f\t%s\t%s\t\n", r.Scenario, r.Client, r.SuccessPct,
			ms(r.P50MS), ms(r.P99MS), r.AttemptsPerCall, r.Breaker, r.Note)
	}
	_ = w.Flush()
	fmt.Fprintf(out, "\nran in %v\n", took.Round(100*time.Millisecond))
}

func ms(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.0fms", v)
}
