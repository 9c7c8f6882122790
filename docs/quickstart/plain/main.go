// The quick start for any other client: the selector picks a node the call
// has not tried, and the retry engine runs the attempts. Here the
// "transport" is an HTTP GET; node "b" answers 503.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

func main() {
	var nodes []selector.Node
	for _, id := range []string{"a", "b", "c"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if id == "b" {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, "hello from ", id)
		}))
		defer srv.Close()
		nodes = append(nodes, selector.Node{ID: id, Addr: srv.Listener.Addr().String()})
	}
	sel, err := selector.New(selector.WithStrategy(selector.RoundRobin),
		selector.WithEjection(selector.DefaultEjection()))
	if err != nil {
		log.Fatal(err)
	}
	if err := sel.Update(nodes); err != nil { // any time, while calls run
		log.Fatal(err)
	}
	policy, err := retry.New(retry.WithIdempotent("greeting")) // any name your calls go by
	if err != nil {
		log.Fatal(err)
	}

	failed := 0
	for range 30 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		body, err := retry.Call(ctx, policy, sel, func(ctx context.Context, n selector.Node) (string, error) {
			return get(ctx, "http://"+n.Addr+"/greeting")
		}, retry.Method("greeting"))
		cancel()
		if err != nil {
			failed++
			continue
		}
		_ = body // "hello from a" or "hello from c"
	}
	fmt.Println("failed calls:", failed) // failed calls: 0
}

// get is the transport: an HTTP status of 500 or more becomes the gRPC
// status of its meaning (503: Unavailable, which is retried).
func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err // a refused connection is retried too
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		return "", status.Error(codes.Unavailable, resp.Status)
	}
	if resp.StatusCode >= 500 {
		return "", status.Error(codes.Internal, resp.Status)
	}
	return resp.Status, nil
}
