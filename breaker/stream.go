package breaker

import (
	"net/http"

	"github.com/afex/hystrix-go/hystrix"
)

// StreamHandler serves the Hystrix dashboard stream: text/event-stream
// frames ("data: {...}") of HystrixCommand and HystrixThreadPool metrics for
// every hystrix command in the process, about once a second. Mount it where
// you choose (the package never opens a port) and Close it when done.
type StreamHandler struct {
	h *hystrix.StreamHandler
}

// NewStreamHandler starts the stream's publisher.
func NewStreamHandler() *StreamHandler {
	h := hystrix.NewStreamHandler()
	h.Start()
	return &StreamHandler{h: h}
}

func (s *StreamHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

// Close stops the publisher. Connected clients receive nothing more; their
// requests end when they disconnect.
func (s *StreamHandler) Close() error {
	s.h.Stop()
	return nil
}

// HystrixGoroutines returns the functions of the goroutines hystrix-go
// starts and never stops (two per circuit, for the life of the process, and
// one per metrics collector per event), for a leak checker to ignore:
//
//	for _, f := range breaker.HystrixGoroutines() {
//		opts = append(opts, goleak.IgnoreAnyFunction(f))
//	}
func HystrixGoroutines() []string {
	return []string{
		"github.com/afex/hystrix-go/hystrix.(*metricExchange).Monitor",
		"github.com/afex/hystrix-go/hystrix.(*poolMetrics).Monitor",
		"github.com/afex/hystrix-go/hystrix.(*metricExchange).IncrementMetrics",
	}
}
