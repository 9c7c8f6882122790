package breaker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/internal/httpx"
	"github.com/rpcguard/rpcguard/outcome"
)

// Middleware breaks per route: the command is "METHOD PATTERN" of the
// http.ServeMux route that serves the request ("GET /users/{id}", never the
// raw URL with its ids), found from the request's Pattern (when the
// middleware wraps a handler inside the mux) or from next when next is the
// *http.ServeMux; otherwise "METHOD (unrouted)". A method outside the nine
// standard ones is named "OTHER", so that remote clients cannot create
// circuits at will. A response of 500 or more becomes an HTTPStatusError,
// whose gRPC status (httpx's table: 502 and 503 Unavailable, 504
// DeadlineExceeded, 501 Unimplemented, others Internal) the Classifier
// reads like any call's. An open circuit answers 503 with Retry-After (the
// sleep window), too many concurrent requests 429, and a request that ran
// past the Timeout without writing anything 504. The handler's context ends
// at the Timeout.
func (b *Breaker) Middleware(next http.Handler) http.Handler {
	mux, _ := next.(*http.ServeMux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cmd := httpx.Route(r, mux)
		sw := &httpx.StatusWriter{ResponseWriter: w}
		err := b.Do(r.Context(), cmd, func(ctx context.Context) error {
			next.ServeHTTP(sw, r.WithContext(ctx))
			if sw.Code >= 500 {
				return &HTTPStatusError{Code: sw.Code} // converted here, at the boundary
			}
			if err := ctx.Err(); err != nil && !sw.Wrote {
				return err
			}
			return nil
		})
		if err == nil || sw.Wrote {
			return
		}
		var re *RefusedError
		switch {
		case errors.As(err, &re):
			w.Header().Set("Retry-After", strconv.Itoa(int((re.RetryAfter+time.Second-1)/time.Second)))
			http.Error(w, err.Error(), outcome.HTTPStatus(status.Code(err))) // 503 open, 429 rejected
		case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
			http.Error(w, "breaker: timed out", http.StatusGatewayTimeout)
		}
	})
}

// HTTPStatusError is the error of a response of 500 or more, as the
// Middleware hands it to the circuit: it answers status.Code with the gRPC
// code of its meaning, and errors.As gives a Classifier the HTTP status.
type HTTPStatusError struct{ Code int }

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
}

// GRPCStatus maps the HTTP status to its gRPC code (outcome.FromHTTP).
func (e *HTTPStatusError) GRPCStatus() *status.Status {
	return status.New(outcome.FromHTTP(e.Code), e.Error())
}
