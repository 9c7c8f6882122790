package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/breaker"
)

// The plain Go API: a dependency that keeps failing opens its circuit, and
// calls are refused at once instead of waiting on it.
func ExampleBreaker_Do() {
	b, err := breaker.New(
		breaker.WithNamespace("example-do"),
		breaker.WithSettings(breaker.Settings{VolumeThreshold: 5, ErrorPercent: 50, SleepWindow: time.Minute}),
	)
	if err != nil {
		log.Fatal(err)
	}
	down := func(ctx context.Context) error { return status.Error(codes.Unavailable, "inventory is down") }
	for range 5 {
		_ = b.Do(context.Background(), "inventory.Get", down)
	}
	for !b.IsOpen("inventory.Get") { // hystrix counts events on its own goroutine
		time.Sleep(time.Millisecond)
	}
	err = b.Do(context.Background(), "inventory.Get", down)
	fmt.Println(errors.Is(err, breaker.ErrOpen), status.Code(err))
	// Output: true Unavailable
}

// The HTTP gateway case: one circuit per route pattern, and the Hystrix
// dashboard stream mounted where you choose.
func ExampleBreaker_Middleware() {
	b, err := breaker.New(breaker.WithNamespace("gateway"))
	if err != nil {
		log.Fatal(err)
	}
	api := http.NewServeMux()
	api.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "user", r.PathValue("id"))
	})
	stream := breaker.NewStreamHandler()
	defer stream.Close()

	root := http.NewServeMux()
	root.Handle("/", b.Middleware(api))                     // circuits "GET /users/{id}", ...
	root.Handle("/hystrix.stream", stream)                  // for the Hystrix dashboard
	_ = &http.Server{Addr: "127.0.0.1:8080", Handler: root} // ListenAndServe in your program
	fmt.Println("ok")
	// Output: ok
}
