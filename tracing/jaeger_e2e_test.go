package tracing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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
	var found bool
	testcluster.WaitFor(t, 30*time.Second, "the trace in Jaeger's query API", func() bool {
		resp, err := http.Get(query + "/api/traces?limit=5&service=" + url.QueryEscape(service))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct {
			Data []struct {
				Spans []struct {
					OperationName string `json:"operationName"`
				} `json:"spans"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&body) != nil {
			return false
		}
		for _, tr := range body.Data {
			for _, s := range tr.Spans {
				found = found || s.OperationName == echo.UnaryMethod
			}
		}
		return found
	})
}
