package tracing_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opentracing/opentracing-go"
	"google.golang.org/grpc"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/tracing"
)

// Every stream shape finishes its span when its last message or status is
// read, while the caller's context is still alive.
func TestStreamShapesFinishTheirSpan(t *testing.T) {
	for _, sh := range []struct {
		name, method string
		call         func(ctx context.Context, cc *grpc.ClientConn) error
	}{
		{"unary-like", echo.UnaryMethod, func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := echo.UnaryStream(ctx, cc)
			return err
		}},
		{"client", echo.ClientStreamMethod, func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := echo.ClientStream(ctx, cc, 3)
			return err
		}},
		{"server", echo.ServerStreamMethod, func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := echo.ServerStream(ctx, cc, 3)
			return err
		}},
		{"bidi", echo.BidiMethod, func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := echo.Bidi(ctx, cc, 3)
			return err
		}},
	} {
		t.Run(sh.name, func(t *testing.T) {
			tg, rep := newTracing(t)
			node := testcluster.Start(t, 1).Nodes[0]
			cc := testcluster.Dial(t, "passthrough:///"+node.Addr, grpc.WithChainStreamInterceptor(tg.StreamClientInterceptor()))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := sh.call(ctx, cc); err != nil {
				t.Fatal(err)
			}
			s := find(t, spans(rep), sh.method, "client")
			if s.tags[tracing.TagGRPCCode] != "OK" || s.tags["error"] != nil {
				t.Fatalf("span tags %v, want grpc.code OK and no error", s.tags)
			}
		})
	}
}

// Baggage that gRPC metadata cannot carry as it is ("José", a value with a
// newline), arriving from a remote HTTP client, crosses a gRPC hop intact;
// a key metadata cannot carry at all is dropped and reported; the call
// succeeds either way. HTTP → HTTP keeps "a b/c" exact.
func TestBaggageNeverFailsACall(t *testing.T) {
	var mu sync.Mutex
	var dropped []string
	tg, _ := newTracing(t, tracing.WithHooks(tracing.Hooks{OnDropped: func(k string) {
		mu.Lock()
		dropped = append(dropped, k)
		mu.Unlock()
	}}))
	got := make(chan map[string]string, 1)
	node, err := echo.Start("b", grpc.ChainUnaryInterceptor(tg.UnaryServerInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Kill)
	node.SetFault(func(ctx context.Context, _ string) error {
		sp := opentracing.SpanFromContext(ctx)
		got <- map[string]string{"user": sp.BaggageItem("user"), "note": sp.BaggageItem("note"), "line": sp.BaggageItem("line")}
		return nil
	})
	cc := testcluster.Dial(t, "passthrough:///"+node.Addr, grpc.WithChainUnaryInterceptor(tg.UnaryClientInterceptor()))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /front", func(w http.ResponseWriter, r *http.Request) {
		sp := opentracing.SpanFromContext(r.Context())
		sp.SetBaggageItem("line", "a\nb")
		sp.SetBaggageItem("my key", "v") // no metadata key can hold the space
		if _, err := echo.Unary(r.Context(), cc); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	})
	front := httptest.NewServer(tg.Middleware(mux))
	defer front.Close()

	req, _ := http.NewRequest(http.MethodGet, front.URL+"/front", nil)
	req.Header.Set("Uberctx-User", "José") // a remote client we do not control
	req.Header.Set("Uberctx-Note", "a+b%2Fc")
	resp, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the downstream gRPC call failed: %d %s", resp.StatusCode, body)
	}
	b := <-got
	if b["user"] != "José" || b["note"] != "a b/c" || b["line"] != "a\nb" {
		t.Fatalf("baggage across the gRPC hop: %q", b)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dropped) != 1 || dropped[0] != "uberctx-my key" {
		t.Fatalf("dropped %q, want the key with a space, once", dropped)
	}
}

// The RoundTripper and the middleware agree: baggage makes the HTTP round
// trip exactly.
func TestHTTPBaggageRoundTripIsExact(t *testing.T) {
	tg, _ := newTracing(t)
	got := make(chan string, 1)
	srv := httptest.NewServer(tg.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- opentracing.SpanFromContext(r.Context()).BaggageItem("note")
	})))
	defer srv.Close()
	ctx, finish := tg.StartCall(context.Background(), "client", tracing.SpanInfo{})
	opentracing.SpanFromContext(ctx).SetBaggageItem("note", "a b/c é")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := (&http.Client{Transport: tg.RoundTripper(srv.Client().Transport)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	finish(nil)
	if v := <-got; v != "a b/c é" {
		t.Fatalf("baggage arrived as %q, want %q", v, "a b/c é")
	}
}

// Remote clients choose the HTTP method: 1,000 made-up ones must not name
// 1,000 spans.
func TestMadeUpHTTPMethodsNameBoundedSpans(t *testing.T) {
	tg, rep := newTracing(t)
	srv := httptest.NewServer(tg.Middleware(http.NewServeMux()))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	for range 1000 {
		m := make([]byte, 5+rand.IntN(5))
		for i := range m {
			m[i] = byte('A' + rand.IntN(26))
		}
		req, _ := http.NewRequest(string(m), srv.URL+"/x", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	names := map[string]bool{}
	for _, s := range spans(rep) {
		names[s.op] = true
	}
	if len(names) != 1 || !names["HTTP OTHER (unrouted)"] {
		t.Fatalf("span names %v, want only %q", keys(names), "HTTP OTHER (unrouted)")
	}
}

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return fmt.Sprint(strings.Join(out, ", "))
}
