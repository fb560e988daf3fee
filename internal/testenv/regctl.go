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

// regctlBuild is one way of building regctl, done once per test process.
type regctlBuild struct {
	once sync.Once
	bin  string
	err  error
}

var (
	buildDir     string // $TMPDIR/regctl-build-PID, shared by both builds
	dynamicBuild regctlBuild
	staticBuild  regctlBuild
)

// BuildRegctl builds ./cmd/regctl once per test binary run and returns the
// path of the binary, static (CGO_ENABLED=0) as `make build` makes it.
// With REGCTL_TEST_RACE=1 it is built with -race (and cgo), so a
// race inside `regctl serve` fails the test that started it (see Start);
// that is off by default because bcrypt under the race detector turns each
// `regctl user add` into seconds of CPU. The binary lives in
// $TMPDIR/regctl-build-PID until RemoveBuilds (from TestMain) or a later
// test process deletes it.
func BuildRegctl(t testing.TB) string {
	t.Helper()
	race := os.Getenv(EnvRace) == "1"
	return buildRegctl(t, &dynamicBuild, "regctl", race)
}

// BuildStaticRegctl builds ./cmd/regctl with CGO_ENABLED=0, as `make build`
// does, once per test binary run: `regctl init` copies itself into a FROM
// scratch image and refuses a dynamically linked binary. It lives next to
// BuildRegctl's.
func BuildStaticRegctl(t testing.TB) string {
	t.Helper()
	if os.Getenv(EnvRace) != "1" {
		return BuildRegctl(t) // static already
	}
	return buildRegctl(t, &staticBuild, "regctl-static", false)
}

func buildRegctl(t testing.TB, b *regctlBuild, name string, race bool) string {
	t.Helper()
	b.once.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			b.err = err
			return
		}
		buildOnce.Do(func() {
			removeStaleBuilds()
			buildDir = filepath.Join(os.TempDir(), fmt.Sprintf("%s%d", buildDirPrefix, os.Getpid()))
		})
		if b.err = os.MkdirAll(buildDir, 0o755); b.err != nil {
			return
		}
		b.bin = filepath.Join(buildDir, name)
		args := []string{"build", "-o", b.bin}
		if race {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/regctl")
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if !race {
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		}
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go %v in %s: %w\n%s", args, root, err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "testenv: built %s (race=%v) in %s\n", name, race, time.Since(start).Round(time.Millisecond))
	})
	if b.err != nil {
		t.Fatalf("build regctl: %v", b.err)
	}
	return b.bin
}

var buildOnce sync.Once

// buildDirPrefix+PID is where the test process PID builds regctl.
const buildDirPrefix = "regctl-build-"

// RemoveBuilds deletes what BuildRegctl built. Calling it from TestMain is
// optional: the next BuildRegctl removes builds of processes that are gone.
func RemoveBuilds() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
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

// ModuleRoot walks up from the working directory (go test runs in the
// package's directory) to the directory holding go.mod.
func ModuleRoot() (string, error) {
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
	KeyFormat       string        // --key-format; "": regctl's default (x5c)
	ExtraServices   []string      // more --service names, after Service
	AuditLog        string        // --audit-log FILE; "": off
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
	for _, svc := range c.ExtraServices {
		args = append(args, "--service", svc)
	}
	if c.KeyFormat != "" {
		args = append(args, "--key-format", c.KeyFormat)
	}
	if c.AuditLog != "" {
		args = append(args, "--audit-log", c.AuditLog)
	}
	s := &Server{
		URL:   fmt.Sprintf("http://127.0.0.1:%d", port),
		Realm: fmt.Sprintf("http://localhost:%d/auth/token", port),
	}
	s.Proc = Start(t, "regctl-serve", nil, bin, args...)
	s.Proc.WaitReady(t, 30*time.Second, HTTPCheck(s.URL+"/readyz", 200))
	return s
}
