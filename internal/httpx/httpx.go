// Package httpx holds the net/http helpers that several rpcguard
// middlewares share.
package httpx

import (
	"bufio"
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
// from r.Pattern or, when the caller has the mux, from mux.Handler;
// "METHOD (unrouted)" when neither knows.
func Route(r *http.Request, mux *http.ServeMux) string {
	p := r.Pattern
	if p == "" && mux != nil {
		_, p = mux.Handler(r)
	}
	if p == "" {
		return r.Method + " (unrouted)"
	}
	for i := 0; i < len(p); i++ {
		if p[i] == ' ' { // the pattern names its method: "GET /x"
			return p
		}
	}
	return r.Method + " " + p
}
