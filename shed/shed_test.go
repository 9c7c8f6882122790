package shed_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/shed"
)

// call runs one call on the fake clock that waited w before it reached
// the Limiter and takes d to serve; it reports whether it was refused.
func call(t *testing.T, l *shed.Limiter, w, d time.Duration) bool {
	t.Helper()
	ctx := shed.Arrived(context.Background(), time.Now().Add(-w))
	tok, err := l.Acquire(ctx)
	if err != nil {
		if status.Code(err) != codes.ResourceExhausted || !errors.Is(err, shed.ErrOverloaded) {
			t.Fatalf("refusal %v (code %v), want shed.ErrOverloaded, ResourceExhausted", err, status.Code(err))
		}
		return true
	}
	time.Sleep(d)
	tok.Release()
	return false
}

func newLimiter(t *testing.T, opts ...shed.Option) *shed.Limiter {
	t.Helper()
	l, err := shed.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestShedNeverRefusesCallsThatDidNotWait: calls that waited up to the
// target, 10,000 of them back to back, are never refused.
func TestShedNeverRefusesCallsThatDidNotWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t)
		for i := range 10000 {
			if call(t, l, time.Duration(i%6)*time.Millisecond, time.Millisecond) {
				t.Fatalf("call %d (waited %v) refused", i, time.Duration(i%6)*time.Millisecond)
			}
		}
		if st := l.Snapshot(); st.Refused != 0 || st.Admitted != 10000 || st.Shedding {
			t.Fatalf("stats %+v, want 10,000 admitted and none refused", st)
		}
	})
}

// TestShedBurstsAreNotAStandingQueue: calls that waited long, but for less
// than the interval, or fewer than eight in a row, or with one call in
// between that did not wait, are served.
func TestShedBurstsAreNotAStandingQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t)
		for range 90 { // 90 ms of calls that each waited 20 ms
			if call(t, l, 20*time.Millisecond, time.Millisecond) {
				t.Fatal("a burst shorter than the interval was refused")
			}
		}
		call(t, l, 0, time.Millisecond) // the queue emptied
		for range 5 {                   // a second apart: a pause of the machine now and then
			if call(t, l, 50*time.Millisecond, 0) {
				t.Fatal("five slow calls a second apart were refused")
			}
			time.Sleep(time.Second)
		}
		if st := l.Snapshot(); st.Refused != 0 {
			t.Fatalf("refused %d", st.Refused)
		}
	})
}

// TestShedRefusesAStandingQueue: once calls have waited longer than the
// target for an interval, the ones that waited are refused and the ones
// that did not are served; an interval with no waiting call ends it, and
// the hooks see both changes and every refusal.
func TestShedRefusesAStandingQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var refused, on, off int
		l := newLimiter(t, shed.WithHooks(shed.Hooks{
			OnRefuse: func(w time.Duration) {
				if w <= shed.DefaultTarget {
					t.Errorf("refused a call that waited %v", w)
				}
				refused++
			},
			OnShedding: func(b bool) {
				if b {
					on++
				} else {
					off++
				}
			},
		}))
		first := -1
		for i := range 200 {
			if call(t, l, 20*time.Millisecond, time.Millisecond) && first < 0 {
				first = i
			}
		}
		if first < 100 || first > 110 {
			t.Fatalf("first refusal at call %d (1 ms apart), want after the 100 ms interval", first)
		}
		if !l.Snapshot().Shedding {
			t.Fatal("not shedding")
		}
		if call(t, l, time.Millisecond, time.Millisecond) {
			t.Fatal("a call that did not wait was refused while shedding")
		}
		for range 150 { // 150 ms of calls that do not wait
			call(t, l, 0, time.Millisecond)
		}
		st := l.Snapshot()
		if st.Shedding || on != 1 || off != 1 || int64(refused) != st.Refused || st.Refused != int64(200-first) {
			t.Fatalf("stats %+v, hooks: %d refused, on %d, off %d; want no longer shedding, %d refused, on and off once", st, refused, on, off, 200-first)
		}
		// Back within a second: eight calls in a row are enough.
		n := 0
		for !call(t, l, 20*time.Millisecond, time.Millisecond) {
			n++
		}
		if n != 7 {
			t.Fatalf("refusing again after %d waiting calls, want after 7", n)
		}
	})
}

// TestShedTargetFollowsTheServiceTime: a server whose calls take 50 ms
// has a queue of one call's wait at healthy load: the target rises to the
// service time and the interval to 20 of them, and such waits are served.
func TestShedTargetFollowsTheServiceTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t)
		for range 100 {
			if call(t, l, 45*time.Millisecond, 50*time.Millisecond) {
				t.Fatal("refused a wait shorter than one service time")
			}
		}
		st := l.Snapshot()
		if st.Service < 49*time.Millisecond || st.Target != st.Service || st.Interval != 20*st.Service {
			t.Fatalf("stats %+v, want a 50 ms service time as the target and 1 s as the interval", st)
		}
	})
}

// TestShedStreamsAreNotServiceTimes: a stream holds a slot but its length
// is not learned.
func TestShedStreamsAreNotServiceTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(t)
		tok, err := l.AcquireStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st := l.Snapshot(); st.InFlight != 1 {
			t.Fatalf("in flight %d, want 1", st.InFlight)
		}
		time.Sleep(time.Minute)
		tok.Release()
		if st := l.Snapshot(); st.Service != 0 || st.InFlight != 0 || st.Target != shed.DefaultTarget {
			t.Fatalf("stats %+v after a one-minute stream, want no service time learned", st)
		}
		shed.Token{}.Release() // a refused call's Token releases nothing
	})
}

func TestShedBadOptions(t *testing.T) {
	for name, o := range map[string]shed.Option{
		"WithTarget(0)":     shed.WithTarget(0),
		"WithInterval(-1s)": shed.WithInterval(-time.Second),
		"nil Option":        nil,
	} {
		if _, err := shed.New(o); err == nil || !strings.Contains(err.Error(), "shed:") {
			t.Errorf("%s: %v, want a shed error", name, err)
		}
	}
}
