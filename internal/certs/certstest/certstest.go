// Package certstest has what the certificate tests share: a throwaway CA
// and fake Issuer, Reloader and Runner for unit tests, and starters for
// the real servers of the integration tests, Pebble (Let's Encrypt's test
// ACME CA) and nginx, both listening on 127.0.0.1 only. It is imported
// only by tests.
//
// The servers are found through environment variables:
//
//	REGCTL_TEST_PEBBLE   path of a pebble v2.10.3 binary
//	                     (scripts/test-deps.sh builds it into
//	                     ~/.cache/regctl-test/pebble-v2.10.3/pebble)
//	REGCTL_TEST_NGINX    path of nginx (default: nginx in PATH, then
//	                     /usr/sbin/nginx; Debian's nginx-light will do)
//	REGCTL_TEST_REQUIRE  "1" turns a missing server from a skip into a
//	                     failure, so that CI never passes by skipping
package certstest

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/regctl/regctl/internal/testenv"
)

// Environment variables naming the servers.
const (
	EnvPebble  = "REGCTL_TEST_PEBBLE"
	EnvNginx   = "REGCTL_TEST_NGINX"
	EnvRequire = testenv.EnvRequire
)

// PebbleBinary returns $REGCTL_TEST_PEBBLE, or skips the test (fails it
// under REGCTL_TEST_REQUIRE=1) when it is unset or not executable.
func PebbleBinary(t testing.TB) string {
	t.Helper()
	p := os.Getenv(EnvPebble)
	if p == "" {
		testenv.SkipOrFail(t, EnvPebble+" is not set: set it to the path of a pebble v2.10.3 binary (scripts/test-deps.sh builds one into ~/.cache/regctl-test/pebble-v2.10.3/pebble)")
		return ""
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		testenv.SkipOrFail(t, fmt.Sprintf("%s=%s is not an executable file (run scripts/test-deps.sh)", EnvPebble, p))
	}
	return p
}

// NginxBinary returns $REGCTL_TEST_NGINX, else nginx from PATH or
// /usr/sbin/nginx, or skips the test (fails it under REGCTL_TEST_REQUIRE=1).
func NginxBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvNginx); p != "" {
		return p
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	testenv.SkipOrFail(t, "nginx not found: set "+EnvNginx+" or install it (apt-get install -y nginx-light)")
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return testenv.FreePort(t)
}

// Logger returns a logger that writes to t.Log until the test ends.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
