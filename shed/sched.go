package shed

import (
	"math"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// schedEvery is how often the scheduler's latency is read.
const schedEvery = int64(10 * time.Millisecond)

// schedWait estimates how long a call whose arrival is unknown waited: the
// 90th percentile of how long this process's goroutines waited to run
// (runtime/metrics /sched/latencies:seconds) over the last schedEvery. A
// server that takes more than its CPUs can do queues there, before any
// handler runs; a handler's wrapper cannot see that queue otherwise.
type schedWait struct {
	at  atomic.Int64 // Limiter clock of the last reading
	est atomic.Int64 // the estimate, ns

	mu     sync.Mutex
	sample [1]metrics.Sample
	prev   []uint64
}

func (w *schedWait) estimate(now int64) time.Duration {
	at := w.at.Load()
	if now-at < schedEvery || !w.at.CompareAndSwap(at, now) {
		return time.Duration(w.est.Load())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sample[0].Name == "" {
		w.sample[0].Name = "/sched/latencies:seconds"
	}
	metrics.Read(w.sample[:])
	if w.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0 // not in this runtime: no estimate
	}
	h := w.sample[0].Value.Float64Histogram()
	if len(w.prev) != len(h.Counts) {
		w.prev = append(w.prev[:0], h.Counts...)
		return time.Duration(w.est.Load())
	}
	var total uint64
	for i, c := range h.Counts {
		total += c - w.prev[i]
	}
	var p90 float64
	if total > 0 {
		var acc uint64
		for i, c := range h.Counts {
			acc += c - w.prev[i]
			if 10*acc >= 9*total {
				p90 = h.Buckets[i] // the bucket's lower bound: never more than seen
				if math.IsInf(p90, -1) {
					p90 = 0
				}
				break
			}
		}
	}
	copy(w.prev, h.Counts)
	est := time.Duration(p90 * float64(time.Second))
	w.est.Store(int64(est))
	return est
}
