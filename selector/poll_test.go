package selector_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rpcguard/rpcguard/selector"
)

// A registry's code that panics, in a listing or in its watch, fails that
// listing or ends that watch (reported to OnError) and never the process:
// Poll goes on listing every Every and hands on the next good set.
func TestPollSurvivesARegistryThatPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var calls int
		var reported []string
		src, err := selector.Poll(selector.Poller{
			List: func(context.Context, string) ([]selector.Node, error) {
				mu.Lock()
				defer mu.Unlock()
				calls++
				if calls == 2 {
					panic("a registry bug")
				}
				return []selector.Node{{ID: "n", Addr: "127.0.0.1:" + string(rune('0'+calls))}}, nil
			},
			Trigger: func(context.Context, string) (func() error, error) {
				return func() error { panic("a watch bug") }, nil
			},
			Every: time.Second,
			OnError: func(_ string, err error) {
				mu.Lock()
				defer mu.Unlock()
				reported = append(reported, err.Error())
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w, err := src.Watch(ctx, "echo")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		if nodes, err := w.Next(); err != nil || nodes[0].Addr != "127.0.0.1:1" {
			t.Fatalf("first set: %v, %v", nodes, err)
		}
		time.Sleep(2500 * time.Millisecond) // listing 2 panics, listing 3 succeeds
		if nodes, err := w.Next(); err != nil || nodes[0].Addr != "127.0.0.1:3" {
			t.Fatalf("after the panics: %v, %v; want the third listing's set", nodes, err)
		}
		mu.Lock()
		defer mu.Unlock()
		all := strings.Join(reported, "\n")
		if !strings.Contains(all, "trigger for \"echo\" panicked: a watch bug") || !strings.Contains(all, "listing \"echo\" panicked: a registry bug") {
			t.Fatalf("reported %q, want both panics", reported)
		}
	})
}
