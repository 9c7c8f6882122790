package metrics

import (
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// collector turns the Observer's snapshot into metrics at every scrape.
type collector struct{ o *Observer }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	nodeEjected    = desc("rpcguard_node_ejected", "1 while the node is ejected by outlier detection.", "service", "node")
	nodeUnreach    = desc("rpcguard_node_unreachable", "1 while the node is out of the picks after it refused a connection.", "service", "node")
	nodeEjections  = desc("rpcguard_node_ejections_total", "Ejections of the node since it joined.", "service", "node")
	nodeInFlight   = desc("rpcguard_node_in_flight", "Attempts in flight to the node.", "service", "node")
	nodeAttempts   = desc("rpcguard_node_attempts_total", "Attempts to the node by outcome (success, failure; neutral ones are not counted).", "service", "node", "outcome")
	nodeLatency    = desc("rpcguard_node_latency_seconds", "The node's latency, as power of two choices averages it (0 before a sample).", "service", "node")
	nodeInSubset   = desc("rpcguard_node_in_subset", "1 while the node is in the client's subset (every node is when the service is not subset).", "service", "node")
	circuitOpen    = desc("rpcguard_circuit_open", "1 while the circuit is open.", "client", "command")
	circuitEvents  = desc("rpcguard_circuit_events_total", "The breaker's events by kind (success, failure, timeout, short_circuit, rejected, canceled).", "client", "command", "event")
	circuitErrors  = desc("rpcguard_circuit_error_ratio", "The share of the last 10 s's outcomes that failed or timed out.", "client", "command")
	circuitVolume  = desc("rpcguard_circuit_volume", "Outcomes in the last 10 s.", "client", "command")
	budgetNow      = desc("rpcguard_retry_budget", "Retries the client's budget holds now.", "client")
	budgetMax      = desc("rpcguard_retry_budget_max", "Retries the client's budget holds at most.", "client")
	limitNow       = desc("rpcguard_retry_concurrency_limit", "The adaptive concurrency limit while it is on (a server answered ResourceExhausted lately); 0 while off.", "client")
	limitInFlight  = desc("rpcguard_retry_in_flight", "Attempts in flight under the client's policy.", "client")
	shedShedding   = desc("rpcguard_shed_shedding", "1 while the server's load shedder refuses the calls that waited past its target.", "server")
	shedCalls      = desc("rpcguard_shed_calls_total", "Calls the server's load shedder admitted or refused.", "server", "outcome")
	shedInFlight   = desc("rpcguard_shed_in_flight", "Calls the server's load shedder admitted that have not ended.", "server")
	shedTarget     = desc("rpcguard_shed_target_seconds", "The queueing delay the server's load shedder allows (its target, raised by the service time).", "server")
	regUp          = desc("rpcguard_registration_registered", "1 while the node is registered, as far as its registrar knows.", "service", "node")
	regRenewals    = desc("rpcguard_registration_renewals_total", "Successful registrations and renewals.", "service", "node")
	regFailures    = desc("rpcguard_registration_failures_total", "Registry calls that failed.", "service", "node")
	regCheckFailed = desc("rpcguard_registration_check_failures_total", "Renewal ticks whose health check failed.", "service", "node")
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodeEjected, nodeUnreach, nodeEjections, nodeInFlight, nodeAttempts, nodeLatency, nodeInSubset,
		circuitOpen, circuitEvents, circuitErrors, circuitVolume, budgetNow, budgetMax, limitNow, limitInFlight,
		shedShedding, shedCalls, shedInFlight, shedTarget, regUp, regRenewals, regFailures, regCheckFailed} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.o.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		send(ch, d, prometheus.GaugeValue, v, labels)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		send(ch, d, prometheus.CounterValue, float64(v), labels)
	}
	for _, cl := range s.Clients {
		for _, n := range cl.Nodes {
			id := n.Node.ID
			gauge(nodeEjected, b2f(n.Ejected), cl.Service, id)
			gauge(nodeUnreach, b2f(n.Unreachable), cl.Service, id)
			counter(nodeEjections, n.Ejections, cl.Service, id)
			gauge(nodeInFlight, float64(n.InFlight), cl.Service, id)
			counter(nodeAttempts, n.Successes, cl.Service, id, "success")
			counter(nodeAttempts, n.Failures, cl.Service, id, "failure")
			gauge(nodeLatency, n.Latency.Seconds(), cl.Service, id)
			gauge(nodeInSubset, b2f(n.InSubset), cl.Service, id)
		}
	}
	for _, ci := range s.Circuits {
		gauge(circuitOpen, b2f(ci.Open), ci.Client, ci.Command)
		for _, e := range []struct {
			name string
			n    int64
		}{{"success", ci.Successes}, {"failure", ci.Failures}, {"timeout", ci.Timeouts},
			{"short_circuit", ci.ShortCircuits}, {"rejected", ci.Rejected}, {"canceled", ci.Canceled}} {
			counter(circuitEvents, e.n, ci.Client, ci.Command, e.name)
		}
		gauge(circuitErrors, float64(ci.ErrorPercent)/100, ci.Client, ci.Command)
		gauge(circuitVolume, float64(ci.Volume), ci.Client, ci.Command)
	}
	for _, p := range s.Policies {
		gauge(budgetNow, p.Budget, p.Client)
		gauge(budgetMax, p.BudgetMax, p.Client)
		gauge(limitNow, p.Limit, p.Client)
		gauge(limitInFlight, float64(p.InFlight), p.Client)
	}
	for _, sh := range s.Shedders {
		gauge(shedShedding, b2f(sh.Shedding), sh.Server)
		counter(shedCalls, sh.Admitted, sh.Server, "admitted")
		counter(shedCalls, sh.Refused, sh.Server, "refused")
		gauge(shedInFlight, float64(sh.InFlight), sh.Server)
		gauge(shedTarget, sh.Target.Seconds(), sh.Server)
	}
	for _, r := range s.Registrations {
		gauge(regUp, b2f(r.Registered), r.Service, r.Node.ID)
		counter(regRenewals, r.Renewals, r.Service, r.Node.ID)
		counter(regFailures, r.Failures, r.Service, r.Node.ID)
		counter(regCheckFailed, r.CheckFailures, r.Service, r.Node.ID)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// send makes one metric; a label value that is not valid UTF-8 (names and
// IDs may come from a registry the program does not control) is repaired
// rather than let Prometheus panic in a scrape, and a metric that still
// cannot be made is reported as an invalid metric, never a panic.
func send(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels []string) {
	for i, l := range labels {
		if !utf8.ValidString(l) {
			labels[i] = strings.ToValidUTF8(l, "\uFFFD")
		}
	}
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}
