package shed_test

import (
	"fmt"
	"net/http"

	"google.golang.org/grpc"

	"github.com/rpcguard/rpcguard/shed"
)

// A gRPC server that refuses what it cannot serve in time: the Limiter's
// Tap stamps each stream's arrival, its interceptors refuse the calls that
// waited in a standing queue with ResourceExhausted and a pushback.
func ExampleLimiter_ServerOptions() {
	l, err := shed.New()
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(l.ServerOptions()...)
	defer srv.Stop()
	// register services, then srv.Serve(lis)
	fmt.Printf("%+v\n", l.Snapshot())
	// Output: {InFlight:0 Admitted:0 Refused:0 Shedding:false Target:5ms Interval:100ms Service:0s}
}

// An HTTP server: 429 with Retry-After for the requests that waited in a
// standing queue (here the Go scheduler's wait: net/http does not say when
// a request arrived).
func ExampleLimiter_Middleware() {
	l, err := shed.New()
	if err != nil {
		panic(err)
	}
	api := http.NewServeMux()
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
	_ = &http.Server{Addr: "127.0.0.1:0", Handler: l.Middleware(api)}
	fmt.Println(l.Snapshot().Shedding)
	// Output: false
}
