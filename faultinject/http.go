package faultinject

import (
	"errors"
	"net/http"

	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/outcome"
)

// Middleware injects the faults of node into an HTTP server: an error
// answers its HTTPStatus (a gRPC Code maps to its HTTP status: 503, 504,
// 429, 404, ...); Abort
// and Down cut the connection without an answer; Hang holds the request
// until it is canceled. Rules match the HTTP method as Method.
func (i *Injector) Middleware(node string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var activated string
		if i.header != "" {
			activated = r.Header.Get(i.header)
		}
		err := i.Apply(r.Context(), "", r.Method, node, activated)
		if err == nil {
			next.ServeHTTP(w, r)
			return
		}
		if r.Context().Err() != nil {
			return // the client is gone (a Hang, or it gave up during the latency)
		}
		var he *httpError
		switch {
		case errors.As(err, &he):
			http.Error(w, err.Error(), he.Status)
		case errors.Is(err, ErrDown) || errors.Is(err, ErrAborted):
			if h, ok := w.(http.Hijacker); ok {
				if conn, _, herr := h.Hijack(); herr == nil {
					_ = conn.Close()
					return
				}
			}
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			http.Error(w, err.Error(), outcome.HTTPStatus(status.Code(err)))
		}
	})
}
