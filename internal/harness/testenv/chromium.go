package testenv

import (
	"bytes"
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// chromiumArgs run Chromium headless as root (no sandbox) and keep it off every network but
// loopback: a proxy on a closed loopback port for everything else (Chromium never proxies
// loopback), no host name resolved but 127.0.0.1 and localhost, and none of its background
// services (updates, sync, metrics).
func chromiumArgs(profile string) []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=" + profile,
		"--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
		"--disable-domain-reliability", "--no-pings", "--metrics-recording-only", "--disable-extensions",
	}
}

// chromium runs headless Chromium (Debian's package chromium) with args after its own, and
// returns its standard output. The test fails, naming the package, when Chromium is missing.
func chromium(tb testing.TB, args ...string) []byte {
	tb.Helper()
	exe, err := lookPath("chromium", "install the Debian package chromium (make deps does)")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, append(chromiumArgs(tb.TempDir()), args...)...)
	// Its own process group, killed whole if it hangs: Chromium runs several processes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		tb.Fatalf("chromium %v: %v\n%s", args, err, errOut.String())
	}
	return out.Bytes()
}

// BrowserDOM loads url in headless Chromium and returns the DOM it rendered, serialized.
func BrowserDOM(tb testing.TB, url string) string {
	tb.Helper()
	return string(chromium(tb, "--dump-dom", url))
}

// BrowserScreenshot loads url in headless Chromium at 1400×1000 and saves a PNG of it at path.
func BrowserScreenshot(tb testing.TB, url, path string) {
	tb.Helper()
	chromium(tb, "--screenshot="+path, "--window-size=1400,1000", "--hide-scrollbars", url)
}
