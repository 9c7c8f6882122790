package tracing

import (
	"net/http"
	"strings"

	"github.com/opentracing/opentracing-go"
	"google.golang.org/grpc/metadata"
)

// Trace headers cross three kinds of carrier: gRPC metadata, HTTP headers
// and the plain API's map. Every one is written and read in the tracer's
// HTTPHeaders format, in which Jaeger URL-encodes baggage values ("José"
// travels as "Jos%C3%A9", "a b/c" as "a+b%2Fc") and decodes them on the
// other side, so that any value makes the round trip exactly. What a
// carrier still cannot carry (a baggage key with a space, a value with
// control characters from a tracer that does not encode) is dropped and
// reported through Hooks.OnDropped: observability never fails a call.
const format = opentracing.HTTPHeaders

// writer is the carrier a tracer injects into.
type writer struct {
	t   *Tracing
	ok  func(k, v string) bool
	set func(k, v string)
}

func (w writer) Set(k, v string) {
	if !w.ok(k, v) {
		if h := w.t.hooks.OnDropped; h != nil {
			h(k)
		}
		return
	}
	w.set(k, v)
}

// mdWriter writes into gRPC metadata: lowercase keys, values of printable
// ASCII (gRPC fails a call whose metadata breaks either rule).
func (t *Tracing) mdWriter(md metadata.MD) writer {
	return writer{t: t, ok: metadataSafe, set: func(k, v string) { md[strings.ToLower(k)] = []string{v} }}
}

// mapWriter writes into the plain API's map, under gRPC's rules (the
// strictest of the transports it may feed).
func (t *Tracing) mapWriter(m map[string]string) writer {
	return writer{t: t, ok: metadataSafe, set: func(k, v string) { m[strings.ToLower(k)] = v }}
}

// headerWriter writes into HTTP headers: token names, values without
// control characters (Go's client refuses a request with others).
func (t *Tracing) headerWriter(h http.Header) writer {
	return writer{t: t, ok: httpSafe, set: h.Set}
}

// metadataSafe reports whether gRPC can carry the pair as a text header.
func metadataSafe(k, v string) bool {
	if k == "" || strings.HasSuffix(strings.ToLower(k), "-bin") {
		return false // binary headers take base64 values; tracers write text
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// httpSafe reports whether an HTTP/1.1 header can carry the pair: the name
// a token (RFC 9110), the value free of control characters but tab.
func httpSafe(k, v string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
