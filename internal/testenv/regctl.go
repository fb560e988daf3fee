package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// BuildRegctl builds ./cmd/regctl once per test binary run and returns the
// path of the binary. With REGCTL_TEST_RACE=1 it is built with -race, so a
// race inside `regctl serve` fails the test that started it (see Start);
// that is off by default because bcrypt under the race detector turns each
// `regctl user add` into seconds of CPU. The binary lives in
// $TMPDIR/regctl-build-PID until RemoveBuilds (from TestMain) or a later
// test process deletes it.
func BuildRegctl(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			build.err = err
			return
		}
		removeStaleBuilds()
		build.dir = filepath.Join(os.TempDir(), fmt.Sprintf("%s%d", buildDirPrefix, os.Getpid()))
		if build.err = os.MkdirAll(build.dir, 0o700); build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "regctl")
		race := os.Getenv(EnvRace) == "1"
		args := []string{"build", "-o", build.bin}
		if race {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/regctl")
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go %v in %s: %v\n%s", args, root, err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "testenv: built regctl (race=%v) in %s\n", race, time.Since(start).Round(time.Millisecond))
	})
	if build.err != nil {
		t.Fatalf("build regctl: %v", build.err)
	}
	return build.bin
}

// buildDirPrefix+PID is where the test process PID builds regctl.
const buildDirPrefix = "regctl-build-"

// RemoveBuilds deletes what BuildRegctl built. Calling it from TestMain is
// optional: the next BuildRegctl removes builds of processes that are gone.
func RemoveBuilds() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}

// removeStaleBuilds deletes the build directories of test processes that
// no longer run.
func removeStaleBuilds() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), buildDirPrefix+"*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), buildDirPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}

// moduleRoot walks up from the working directory (go test runs in the
// package's directory) to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Regctl runs the regctl binary Bin against the store Store.
type Regctl struct {
	Bin   string
	Store string // mongodb://HOST:PORT/DB
}

// Run runs `regctl args... --store STORE` with stdin and returns the result.
func (r Regctl) Run(t testing.TB, stdin string, args ...string) Result {
	t.Helper()
	return Run(t, nil, stdin, r.Bin, append(args, "--store", r.Store)...)
}

// MustRun is Run that fails the test unless regctl exits 0.
func (r Regctl) MustRun(t testing.TB, stdin string, args ...string) Result {
	t.Helper()
	return MustRun(t, nil, stdin, r.Bin, append(args, "--store", r.Store)...)
}

// ServeConfig is what `regctl serve` is started with.
type ServeConfig struct {
	Issuer, Service string
	KeysDir         string
	Store           string
	ReloadInterval  time.Duration // 0: regctl's default
}

// Server is a running `regctl serve`.
type Server struct {
	URL   string // http://127.0.0.1:PORT
	Realm string // http://localhost:PORT/auth/token, for registries and clients
	Proc  *Proc
}

// StartServe starts `regctl serve` on a free 127.0.0.1 port and waits until
// /readyz answers 200.
func StartServe(t testing.TB, bin string, c ServeConfig) *Server {
	t.Helper()
	port := FreePort(t)
	args := []string{"serve",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--issuer", c.Issuer,
		"--service", c.Service,
		"--keys", c.KeysDir,
		"--store", c.Store,
	}
	if c.ReloadInterval > 0 {
		args = append(args, "--reload-interval", c.ReloadInterval.String())
	}
	s := &Server{
		URL:   fmt.Sprintf("http://127.0.0.1:%d", port),
		Realm: fmt.Sprintf("http://localhost:%d/auth/token", port),
	}
	s.Proc = Start(t, "regctl-serve", nil, bin, args...)
	s.Proc.WaitReady(t, 30*time.Second, HTTPCheck(s.URL+"/readyz", 200))
	return s
}
