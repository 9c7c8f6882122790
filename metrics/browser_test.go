package metrics_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// chromium is the path of Debian's headless-capable Chromium, or "".
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// The debug page in a real browser: headless Chromium (Debian's chromium
// package, which .ci/run installs) loads it during the fault scenario, and
// the node and circuit rows render, node-2 as ejected. With
// RPCGUARD_SCREENSHOT=FILE.png it also takes a screenshot (the README's).
func TestDebugPageInChromium(t *testing.T) {
	bin := chromium()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no chromium on PATH: .ci/run installs Debian's chromium")
		}
		t.Skip("no chromium on PATH: apt-get install chromium (.ci/run does)")
	}
	s := runScenario(t)
	srv := httptest.NewServer(s.obs.DebugHandler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Flags that keep Chromium off the network and quiet as root in a
	// container.
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	dom, err := exec.CommandContext(ctx, bin, append(args, "--dump-dom", srv.URL)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	for _, re := range []string{
		`<tr class="node ejected" data-node="node-2">`,
		`<tr class="node active" data-node="node-0">`,
		`<tr class="node active" data-node="node-1">`,
		`<tr class="circuit closed" data-command="/rpcguard.test.Echo/Unary">`,
		`<td class="state">ejected \(\d+s more\)</td>`,
	} {
		if !regexp.MustCompile(re).Match(dom) {
			t.Errorf("the page as Chromium rendered it lacks %s", re)
		}
	}
	if shot := os.Getenv("RPCGUARD_SCREENSHOT"); shot != "" {
		out, err := exec.CommandContext(ctx, bin, append(args, "--window-size=1200,820", "--hide-scrollbars",
			"--screenshot="+shot, srv.URL)...).CombinedOutput()
		if err != nil {
			t.Fatalf("chromium --screenshot: %v\n%s", err, out)
		}
	}
}
