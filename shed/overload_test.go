package shed_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/shed"
)

// The overload measurement runs its server in a process of its own (this
// test binary again, with serverEnv set), as a server runs apart from its
// clients: in one process the load generator's goroutines would queue in
// the same Go scheduler as the server's and hide what the limiter does.
const serverEnv = "RPCGUARD_SHED_SERVER" // "shed" or "unprotected"

// rounds is the CPU-bound handler's work: SHA-256 rounds per call (about 4
// ms of one core here).
const rounds = 40000

// burn is the CPU-bound handler's work: a fixed amount of hashing.
func burn() {
	var sum [32]byte
	for range rounds {
		sum = sha256.Sum256(sum[:])
	}
	_ = sum
}

// serveOverload is the server process: an Echo node whose every call
// burns CPU, with the limiter if asked; it prints its address and runs
// until its stdin closes.
func serveOverload(mode string) {
	var opts []grpc.ServerOption
	if mode == "shed" {
		lim, err := shed.New()
		if err != nil {
			panic(err)
		}
		opts = append(opts, lim.ServerOptions()...)
		defer func() {
			fmt.Fprintf(os.Stderr, "SERVER %s: %+v\n", mode, lim.Snapshot())
		}()
	}
	var hmu sync.Mutex
	var srvLat, adm []time.Duration
	opts = append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		t0 := time.Now()
		if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("t0")) > 0 {
			ns, _ := strconv.ParseInt(md.Get("t0")[0], 10, 64)
			hmu.Lock()
			adm = append(adm, t0.Sub(time.Unix(0, ns)))
			hmu.Unlock()
		}
		r, err := h(ctx, req)
		if err == nil {
			hmu.Lock()
			srvLat = append(srvLat, time.Since(t0))
			hmu.Unlock()
		}
		return r, err
	})}, opts...)
	_ = adm
	defer func() {
		hmu.Lock()
		slices.Sort(srvLat)
		slices.Sort(adm)
		if len(adm) > 0 {
			fmt.Fprintf(os.Stderr, "SERVER %s: intake delay p50 %v p90 %v p99 %v\n", mode, adm[len(adm)/2], adm[len(adm)*9/10], adm[len(adm)*99/100])
		}
		if len(srvLat) > 0 {
			fmt.Fprintf(os.Stderr, "SERVER %s: %d ok, interceptor-to-end p50 %v p99 %v\n", mode, len(srvLat), srvLat[len(srvLat)/2], srvLat[len(srvLat)*99/100])
		}
		hmu.Unlock()
	}()
	node, err := echo.Start("cpu", opts...)
	if err != nil {
		panic(err)
	}
	node.SetFault(func(context.Context, string) error { burn(); return nil })
	fmt.Println(node.Addr)
	_, _ = io.Copy(io.Discard, os.Stdin)
	node.Kill()
}

// pinned: the server process runs on the last CPU, and this process (the
// clients) on the others (pinSelf).
var pinned bool

// pinSelf moves every thread of this process off the last CPU, if the
// machine has two or more and taskset is there; it reports whether it did.
func pinSelf(t *testing.T) bool {
	n := runtime.NumCPU()
	if n < 2 {
		return false
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return false
	}
	cpus := "0"
	if n > 2 {
		cpus = fmt.Sprintf("0-%d", n-2)
	}
	if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
		t.Logf("taskset: %v: %s", err, out)
		return false
	}
	t.Cleanup(func() {
		_ = exec.Command("taskset", "-a", "-p", "-c", fmt.Sprintf("0-%d", n-1), strconv.Itoa(os.Getpid())).Run()
	})
	return true
}

// startServer starts the server process and returns its address and a
// function that kills it (an unprotected server keeps burning through its
// backlog long after its callers gave up: it must not run into the next
// measurement).
func startServer(t *testing.T, mode string) (string, func()) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if pinned {
		// The server on a core of its own, as on a machine of its own.
		cmd = exec.Command("taskset", "-c", strconv.Itoa(runtime.NumCPU()-1), os.Args[0], "-test.run=^$")
	}
	cmd.Env = append(os.Environ(), serverEnv+"="+mode)
	if pinned {
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1")
	}
	if g := os.Getenv("SRV_PROCS"); g != "" {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+g)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = stdin.Close()
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(stop)
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(addr), stop
}

// overloadRow is one load level of the overload table.
type overloadRow struct {
	server, client string
	load           float64 // × capacity
	offered, ok    int
	goodput        float64 // OK calls per second
	p50, p99       time.Duration
	attempts       float64 // per call
	refused        int64   // attempts refused by the server (ResourceExhausted)
	failures       map[string]int
}

// attemptCounter counts the attempts a client makes (an interceptor inside
// rpcguard's stack runs once per attempt) and the server's refusals.
type attemptCounter struct{ attempts, refused atomic.Int64 }

func (a *attemptCounter) interceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		a.attempts.Add(1)
		ctx = metadata.AppendToOutgoingContext(ctx, "t0", strconv.FormatInt(time.Now().UnixNano(), 10))
		err := invoker(ctx, method, req, reply, cc, opts...)
		if status.Code(err) == codes.ResourceExhausted {
			a.refused.Add(1)
		}
		return err
	}
}

// measureOverload offers 1×, 2× and 4× of capacity to a server process
// for dur each, open loop (Poisson arrivals, a 1 s deadline per call),
// through a bare gRPC client or rpcguard.NewClient.
func measureOverload(t *testing.T, server string, guarded bool, capacity float64, dur time.Duration) []overloadRow {
	addr, stop := startServer(t, server)
	defer stop()
	var count attemptCounter
	dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithChainUnaryInterceptor(count.interceptor())}
	var cc *grpc.ClientConn
	var err error
	client := "bare gRPC"
	if guarded {
		client = "rpcguard.NewClient"
		src, serr := selector.NewStatic(selector.Node{ID: "cpu", Addr: addr})
		if serr != nil {
			t.Fatal(serr)
		}
		cc, err = rpcguard.NewClient("cpu", src, rpcguard.WithDialOptions(dial...))
	} else {
		cc, err = grpc.NewClient(addr, dial...)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	offer(cc, capacity/2, 2*time.Second, map[string]int{}) // warm up at half the capacity: the limiter learns the unloaded latency
	var rows []overloadRow
	for _, load := range []float64{0.5, 1, 2, 4} {
		a0, r0 := count.attempts.Load(), count.refused.Load()
		row := overloadRow{failures: map[string]int{}}
		lat, offered := offer(cc, load*capacity, dur, row.failures)
		row.server, row.client, row.load, row.offered, row.ok = server, client, load, offered, len(lat)
		row.goodput = float64(len(lat)) / dur.Seconds()
		if len(lat) > 0 {
			slices.Sort(lat)
			row.p50, row.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
		}
		row.attempts = float64(count.attempts.Load()-a0) / float64(offered)
		row.refused = count.refused.Load() - r0
		rows = append(rows, row)
		offer(cc, capacity/2, time.Second, map[string]int{}) // back to a healthy load between levels
	}
	return rows
}

// offer makes calls at rate per second for dur, open loop, and returns the
// latencies of the calls that succeeded within their 1 s deadline, and
// how many it made.
func offer(cc *grpc.ClientConn, rate float64, dur time.Duration, failures map[string]int) ([]time.Duration, int) {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	next := start
	n := 0
	for time.Since(start) < dur {
		next = next.Add(time.Duration(rng.ExpFloat64() / rate * float64(time.Second)))
		time.Sleep(time.Until(next))
		n++
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			t0 := time.Now()
			_, err := echo.Unary(ctx, cc)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				lat = append(lat, d)
				return
			}
			why := status.Code(err).String()
			switch {
			case errors.Is(err, retry.ErrFleetFull):
				why = "refused by the client's limit"
			case status.Code(err) == codes.ResourceExhausted:
				why = "refused by the server"
			}
			failures[why]++
		})
	}
	wg.Wait()
	return lat, n
}

// capacityOf measures how many calls a second the unprotected server
// process serves flat out (16 callers back to back).
func capacityOf(t *testing.T) float64 {
	addr, stop := startServer(t, "unprotected")
	defer stop()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var done atomic.Int64
	var wg sync.WaitGroup
	until := time.Now().Add(3 * time.Second)
	for range 16 {
		wg.Go(func() {
			for time.Now().Before(until) {
				if _, err := echo.Unary(context.Background(), cc); err == nil {
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(done.Load()) / 3
}

// TestShedOverloadMeasured is the overload table (docs/benchmarks.md): a
// CPU-bound server process at 0.5×, 1×, 2× and 4× the load it can serve,
// with and without the limiter, through a bare gRPC client and through
// rpcguard.NewClient, in one run. It runs only when RPCGUARD_MEASURE_SHED=1
// (it takes about three minutes and loads every core):
//
//	RPCGUARD_MEASURE_SHED=1 go test -run TestShedOverloadMeasured -v ./shed/
func TestShedOverloadMeasured(t *testing.T) {
	if os.Getenv("RPCGUARD_MEASURE_SHED") == "" {
		t.Skip("set RPCGUARD_MEASURE_SHED=1 to measure")
	}
	pinned = pinSelf(t)
	capacity := capacityOf(t)
	var b strings.Builder
	where := "server and clients share the CPUs"
	if pinned {
		where = "the server on a CPU of its own (GOMAXPROCS 1), the clients on the others"
	}
	fmt.Fprintf(&b, "\ncapacity %.0f calls/s (%d SHA-256 rounds a call; %s)\n", capacity, rounds, where)
	fmt.Fprintf(&b, "| server | client | load | answered OK | goodput (calls/s) | of capacity | p50 | p99 | attempts per call | refused attempts | failed calls |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range []struct {
		server  string
		guarded bool
	}{{"unprotected", false}, {"shed", false}, {"shed", true}} {
		for _, r := range measureOverload(t, c.server, c.guarded, capacity, 5*time.Second) {
			fmt.Fprintf(&b, "| %s | %s | %.1f× | %.1f%% | %.0f | %.0f%% | %v | %v | %.2f | %d | %v |\n", r.server, r.client, r.load,
				100*float64(r.ok)/float64(r.offered), r.goodput, 100*r.goodput/capacity, r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond), r.attempts, r.refused, r.failures)
		}
	}
	t.Log(b.String())
}
