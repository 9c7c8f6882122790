package main

import (
	"context"
	"time"

	"github.com/opentracing/opentracing-go"

	"github.com/rpcguard/rpcguard/faultinject"
)

// The go-micro rows (package microrows): go-micro's own client as the
// seeds ran it, and go-micro with rpcguard's gomicro, on go-micro v4, or v5
// when built with -tags micro5 (one program cannot link both: they register
// the same protobuf types, and it panics at start).
const (
	clientMicro   = "go-micro"
	clientGoMicro = "gomicro"
)

// microScenario, microRun and microOutcome are microrows' Scenario, Run
// and Outcome, for either version of the package.
type microScenario struct {
	Name  string
	Rules []faultinject.Rule
	Nodes int
	Dead  []int
	Crash bool
}

type microRun struct {
	Calls         int
	TTL, Interval time.Duration
	Tracer        opentracing.Tracer
	Drive         func(call func(ctx context.Context) error, crash func()) (ok int64, latencies []time.Duration, crashedAt time.Time)
}

type microOutcome struct {
	OK        int64
	Latencies []time.Duration
	Attempts  int64
	Breaker   string
	CrashedAt time.Time
	LastCall  time.Time
}

// onMicro reports whether a scenario has go-micro rows: the overload and
// recovery rows measure the gRPC selector's learning and stay gRPC's.
func (sc scenario) onMicro() bool { return sc.capacity == 0 && !sc.recovers }

// runMicro plays one scenario with a go-micro client.
func (e *env) runMicro(sc scenario, client string, calls int) (result, error) {
	o, err := playMicro(microScenario{Name: sc.name, Rules: sc.rules, Nodes: sc.nodes, Dead: sc.dead, Crash: sc.crash}, client,
		microRun{Calls: calls, TTL: ttl, Interval: interval, Tracer: e.tracer,
			Drive: func(call func(ctx context.Context) error, crash func()) (int64, []time.Duration, time.Time) {
				return drive(sc, calls, concurrent, e.runFor, call, crash)
			}})
	if err != nil {
		return result{}, err
	}
	made := len(o.Latencies)
	r := result{Scenario: sc.name, Client: client, Calls: made,
		SuccessPct:      100 * float64(o.OK) / float64(made),
		AttemptsPerCall: float64(o.Attempts) / float64(made), Breaker: o.Breaker}
	r.P50MS, r.P99MS = percentiles(o.Latencies)
	r.crashNote(sc, o.CrashedAt, o.LastCall)
	return r, nil
}
