package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/metrics"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/shed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testcluster.HystrixGoroutines()...) }

// scenario is a scripted fault: 3 echo nodes registered in a memory
// registry by Registrars, node-2 answering Unavailable, and an rpcguard
// client watched by an Observer that made 200 calls.
type scenario struct {
	obs   *metrics.Observer
	nodes []*echo.Server
	cc    *grpc.ClientConn
}

var namespaces = 0

func runScenario(t *testing.T) *scenario {
	t.Helper()
	mem, err := health.NewMemory(health.WithTick(20 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close() })
	s := &scenario{obs: metrics.New()}
	for i := range 3 {
		n, err := echo.Start(fmt.Sprintf("node-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Kill)
		s.nodes = append(s.nodes, n)
		r, err := health.NewRegistrar(mem, "echo", selector.Node{ID: n.ID, Addr: n.Addr}, health.WithTTL(time.Minute), health.WithDrain(0))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Halt)
		s.obs.WatchRegistrar(r)
	}
	namespaces++
	brk, err := breaker.New(breaker.WithNamespace(fmt.Sprintf("metrics-test-%d", namespaces)))
	if err != nil {
		t.Fatal(err)
	}
	policy, err := retry.New(retry.WithIdempotent("/"+echo.Service+"/*"), retry.WithHooks(s.obs.RetryHooks("echo")))
	if err != nil {
		t.Fatal(err)
	}
	s.obs.WatchBreaker("echo", brk)
	s.obs.WatchPolicy("echo", policy)
	s.cc, err = rpcguard.NewClient("echo", mem, rpcguard.WithBreaker(brk), rpcguard.WithRetry(policy),
		rpcguard.WithSelectorOptions(s.obs.Selector("echo")),
		rpcguard.WithBalancerConfig(`{"strategy":"round_robin","ejection":{}}`), // deterministic: node-2 fails 5 times in a row
		rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cc.Close() })
	for range 30 { // connect to every node first
		if _, err := echo.Unary(context.Background(), s.cc, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}
	s.nodes[2].SetFault(echo.FailWith(codes.Unavailable))
	for i := range 200 {
		if _, err := echo.Unary(context.Background(), s.cc); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	return s
}

// value is the metric's value with the labels, from a scrape of reg.
func value(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no %s%v in the scrape", name, labels)
	return 0
}

func hasLabel(m *dto.Metric, name, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == v {
			return true
		}
	}
	return false
}

// A scripted fault, measured: the erroring node is ejected after its 5
// failures, each retried elsewhere; every call succeeds and the circuit
// stays closed; the budget has retries left; every node is registered and
// renewed.
func TestMetricsOfAFaultScenario(t *testing.T) {
	s := runScenario(t)
	reg := s.obs.Registry()
	method := "/" + echo.Service + "/Unary"
	if v := value(t, reg, "rpcguard_node_ejected", "service", "echo", "node", "node-2"); v != 1 {
		t.Errorf("node-2 ejected = %v, want 1", v)
	}
	if v := value(t, reg, "rpcguard_node_ejected", "service", "echo", "node", "node-0"); v != 0 {
		t.Errorf("node-0 ejected = %v, want 0", v)
	}
	if v := value(t, reg, "rpcguard_node_ejections_total", "node", "node-2"); v != 1 {
		t.Errorf("node-2's ejections = %v, want 1", v)
	}
	if v := value(t, reg, "rpcguard_node_attempts_total", "node", "node-2", "outcome", "failure"); v != 5 {
		t.Errorf("node-2's failed attempts = %v, want the 5 that eject it", v)
	}
	if v := value(t, reg, "rpcguard_retries_total", "client", "echo", "method", method); v != 5 {
		t.Errorf("retries = %v, want 5 (one per failed attempt)", v)
	}
	var ok float64
	for _, n := range []string{"node-0", "node-1", "node-2"} {
		ok += value(t, reg, "rpcguard_node_attempts_total", "node", n, "outcome", "success")
	}
	if ok != 230 {
		t.Errorf("successful attempts = %v, want 230 (30 to connect, 200 calls)", ok)
	}
	if v := value(t, reg, "rpcguard_circuit_events_total", "client", "echo", "command", method, "event", "success"); v != 230 {
		t.Errorf("the circuit's successes = %v, want 230", v)
	}
	if v := value(t, reg, "rpcguard_circuit_open", "command", method); v != 0 {
		t.Errorf("circuit open = %v, want 0", v)
	}
	if v := value(t, reg, "rpcguard_retry_budget", "client", "echo"); v < 1 {
		t.Errorf("budget = %v retries, want some left", v)
	}
	for _, n := range []string{"node-0", "node-1", "node-2"} {
		if v := value(t, reg, "rpcguard_registration_registered", "node", n); v != 1 {
			t.Errorf("%s registered = %v, want 1", n, v)
		}
		if v := value(t, reg, "rpcguard_registration_renewals_total", "node", n); v < 1 {
			t.Errorf("%s renewals = %v, want at least its registration", n, v)
		}
	}
	// The text format, as Prometheus scrapes it.
	srv := httptest.NewServer(s.obs.Handler())
	defer srv.Close()
	body := get(t, srv.URL)
	if !strings.Contains(body, `rpcguard_node_ejected{node="node-2",service="echo"} 1`) {
		t.Errorf("/metrics lacks node-2's ejection:\n%s", body)
	}
}

// The debug page shows the nodes (node-2 as ejected), the circuit, the
// budget and the registrations; ?format=json serves the snapshot.
func TestDebugPage(t *testing.T) {
	s := runScenario(t)
	srv := httptest.NewServer(s.obs.DebugHandler())
	defer srv.Close()
	body := get(t, srv.URL)
	for _, want := range []string{`class="node ejected" data-node="node-2"`, `class="node active" data-node="node-0"`,
		`class="circuit closed" data-command="/` + echo.Service + `/Unary"`, `class="policy"`, `<td class="name">node-1</td>`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if js := get(t, srv.URL+"?format=json"); !strings.Contains(js, `"Ejected": true`) {
		t.Errorf("the JSON lacks the ejection:\n%s", js)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// Subset membership shows as rpcguard_node_in_subset and on the page.
func TestSubsetMembershipIsVisible(t *testing.T) {
	obs := metrics.New()
	sel, err := selector.New(selector.WithSubset(selector.Subset{Size: 2, Client: 0}))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []selector.Node
	for i := range 8 {
		nodes = append(nodes, selector.Node{ID: fmt.Sprintf("n%d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 9000+i)})
	}
	if err := sel.Update(nodes); err != nil {
		t.Fatal(err)
	}
	obs.WatchSelector("big", sel)
	in := 0.0
	for _, n := range nodes {
		in += value(t, obs.Registry(), "rpcguard_node_in_subset", "service", "big", "node", n.ID)
	}
	if in < 1 || in > 4 {
		t.Errorf("%v of 8 nodes in a subset of 2", in)
	}
	srv := httptest.NewServer(obs.DebugHandler())
	defer srv.Close()
	body := get(t, srv.URL)
	if strings.Count(body, `<td class="subset">in</td>`) != int(in) || !strings.Contains(body, `<td class="subset">outside</td>`) {
		t.Errorf("the page does not show the subset of %v nodes", in)
	}
}

// A server's load shedder shows as rpcguard_shed_* and on the page: its
// state, admitted and refused calls.
func TestShedderIsVisible(t *testing.T) {
	obs := metrics.New()
	var l *shed.Limiter
	synctest.Test(t, func(t *testing.T) {
		var err error
		if l, err = shed.New(); err != nil {
			t.Fatal(err)
		}
		for range 200 { // a standing queue: every call waited 20 ms
			if tok, err := l.Acquire(shed.Arrived(context.Background(), time.Now().Add(-20*time.Millisecond))); err == nil {
				time.Sleep(time.Millisecond)
				tok.Release()
			}
		}
	})
	obs.WatchShedder("greeter", l)
	st := l.Snapshot()
	if st.Refused == 0 || !st.Shedding {
		t.Fatalf("stats %+v: the scenario did not shed", st)
	}
	if v := value(t, obs.Registry(), "rpcguard_shed_calls_total", "server", "greeter", "outcome", "refused"); v != float64(st.Refused) {
		t.Errorf("refused %v in the scrape, %d in the snapshot", v, st.Refused)
	}
	if v := value(t, obs.Registry(), "rpcguard_shed_shedding", "server", "greeter"); v != 1 {
		t.Errorf("rpcguard_shed_shedding %v, want 1", v)
	}
	srv := httptest.NewServer(obs.DebugHandler())
	defer srv.Close()
	body := get(t, srv.URL)
	if !strings.Contains(body, `<tr class="shedder shedding"><td class="name">greeter</td>`) || !strings.Contains(body, fmt.Sprintf("<td>%d</td>", st.Refused)) {
		t.Errorf("the page does not show the shedder:\n%s", body)
	}
}
