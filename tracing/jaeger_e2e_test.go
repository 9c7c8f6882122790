package tracing_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/tracing"
	"github.com/rpcguard/rpcguard/tracing/jaeger"
)

// TestJaegerEndToEnd sends a traced call's spans to a real Jaeger and reads
// them back through its query API. It runs only when both variables name a
// Jaeger (see the README):
//
//	RPCGUARD_JAEGER_COLLECTOR=http://127.0.0.1:14268/api/traces
//	RPCGUARD_JAEGER_QUERY=http://127.0.0.1:16686
func TestJaegerEndToEnd(t *testing.T) {
	collector, query := os.Getenv("RPCGUARD_JAEGER_COLLECTOR"), os.Getenv("RPCGUARD_JAEGER_QUERY")
	if collector == "" || query == "" {
		t.Skip("set RPCGUARD_JAEGER_COLLECTOR and RPCGUARD_JAEGER_QUERY to run against a real Jaeger")
	}
	service := fmt.Sprintf("rpcguard-e2e-%d", time.Now().UnixNano())
	tr, closer, err := jaeger.New(service, jaeger.WithCollector(collector))
	if err != nil {
		t.Fatal(err)
	}
	tg, err := tracing.New(tracing.WithTracer(tr))
	if err != nil {
		t.Fatal(err)
	}
	node := testcluster.Start(t, 1).Nodes[0]
	cc := testcluster.Dial(t, "passthrough:///"+node.Addr, grpc.WithChainUnaryInterceptor(tg.UnaryClientInterceptor()))
	if _, err := echo.Unary(context.Background(), cc); err != nil {
		t.Fatal(err)
	}
	if err := closer.Close(); err != nil { // flushes the spans to the collector
		t.Fatal(err)
	}
	testcluster.WaitFor(t, 30*time.Second, "the trace in Jaeger's query API", func() bool {
		for _, ops := range testcluster.JaegerTraces(query, service) {
			if ops[echo.UnaryMethod] > 0 {
				return true
			}
		}
		return false
	})
}
