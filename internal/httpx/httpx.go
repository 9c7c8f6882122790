// Package httpx holds the net/http helpers that several rpcguard
// middlewares share.
package httpx

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
)

// StatusWriter records the status a handler wrote, and keeps Flusher and
// Hijacker (and, through Unwrap, http.ResponseController) working.
type StatusWriter struct {
	http.ResponseWriter
	Code  int  // the status written; 200 once the body is written without one
	Wrote bool // the handler wrote a status or body, or hijacked the connection
}

func (w *StatusWriter) WriteHeader(code int) {
	if !w.Wrote {
		w.Code, w.Wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusWriter) Write(p []byte) (int, error) {
	if !w.Wrote {
		w.Code, w.Wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(p)
}

// Flush flushes the underlying writer if it can.
func (w *StatusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if !w.Wrote {
			w.Code, w.Wrote = http.StatusOK, true
		}
		f.Flush()
	}
}

// Hijack hands the connection to the handler if the underlying writer can.
func (w *StatusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("the underlying ResponseWriter (%T) cannot be hijacked", w.ResponseWriter)
	}
	w.Wrote = true // the handler owns the connection; the request counts as answered
	return h.Hijack()
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Route names the route that serves r: "METHOD PATTERN" of the
// http.ServeMux route ("GET /users/{id}", never the raw URL with its ids),
// from mux.Handler when the caller wraps the mux, else from r.Pattern (set
// by a mux outside); "METHOD (unrouted)" when neither knows. METHOD is
// Method's: a bounded set of names, whatever the client sent. It also
// records the route in r's route box, for middlewares further out.
func Route(r *http.Request, mux *http.ServeMux) string {
	var p string
	if mux != nil {
		_, p = mux.Handler(r)
	}
	if p == "" {
		p = r.Pattern
	}
	route := routeOf(r.Method, p)
	if box, ok := r.Context().Value(routeKey{}).(*string); ok && *box == "" {
		*box = route
	}
	return route
}

// routeKey keys the route box in a request's context.
type routeKey struct{}

// WithRouteBox returns ctx with an empty route box, unless it has one, and
// the box: a middleware that wraps others reads from it the route that an
// inner one (wrapping the mux) found.
func WithRouteBox(ctx context.Context) (context.Context, *string) {
	if box, ok := ctx.Value(routeKey{}).(*string); ok {
		return ctx, box
	}
	box := new(string)
	return context.WithValue(ctx, routeKey{}, box), box
}

func routeOf(method, p string) string {
	if p == "" {
		return Method(method) + " (unrouted)"
	}
	for i := 0; i < len(p); i++ {
		if p[i] == ' ' { // the pattern names its method: "GET /x"
			return p
		}
	}
	return Method(method) + " " + p
}

// Method returns the request method as a name that state may be keyed by:
// one of the nine methods of RFC 9110 and RFC 5789, or "OTHER". A remote
// client chooses the method, so anything else would let it create state
// (a circuit, its goroutines, a span name) per made-up method.
func Method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}
