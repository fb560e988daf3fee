// Package testenv starts the real servers regctl's integration and
// end-to-end tests run against (FerretDB, distribution registries, dockerd,
// regctl itself) and runs real client commands. It is imported by tests
// and by the benchmark (internal/bench), never by regctl itself.
//
// Every helper takes a testing.TB, puts its files under t.TempDir(), listens
// on 127.0.0.1 only, writes each process's output to a log file that is
// printed when the test fails, and stops what it started at cleanup.
//
// Which servers exist is told by environment variables (see the constants
// below); scripts/test.sh starts them and sets the variables. A test whose
// variable is unset is skipped, unless REGCTL_TEST_REQUIRE=1, which turns
// the skip into a failure so that CI never passes by skipping.
//
// The process harness also serves regctl-bench, which starts servers
// outside a test: Launch, Proc.Ready and FreeAddr take no testing.TB, and
// their caller stops what they start.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Environment variables naming the servers and tools the tests use.
const (
	// EnvRequire: "1" makes a missing variable fail the test instead of
	// skipping it.
	EnvRequire = "REGCTL_TEST_REQUIRE"
	// EnvMongoURI: mongodb:// URI of a running FerretDB (or MongoDB). Each
	// test picks its own database name on it.
	EnvMongoURI = "REGCTL_TEST_MONGO_URI"
	// EnvFerretDB: path to a ferretdb binary, for tests that start their own.
	EnvFerretDB = "REGCTL_TEST_FERRETDB"
	// EnvRegistry2: path to Debian's docker-registry (distribution 2.8).
	EnvRegistry2 = "REGCTL_TEST_REGISTRY2"
	// EnvRegistry3: path to a distribution v3.1.2 registry binary.
	EnvRegistry3 = "REGCTL_TEST_REGISTRY3"
	// EnvRegistry30: path to a distribution v3.0.0 registry binary.
	EnvRegistry30 = "REGCTL_TEST_REGISTRY30"
	// EnvRegclient: path to regclient's CLI (its `regctl`, installed as
	// regclient).
	EnvRegclient = "REGCTL_TEST_REGCLIENT"
	// EnvOras: path to an oras binary.
	EnvOras = "REGCTL_TEST_ORAS"
	// EnvHelm: path to a helm (v4) binary.
	EnvHelm = "REGCTL_TEST_HELM"
	// EnvCrane: path to a crane binary (go-containerregistry).
	EnvCrane = "REGCTL_TEST_CRANE"
	// EnvDockerHost: unix socket (path or unix:// URL) of a running dockerd.
	EnvDockerHost = "REGCTL_TEST_DOCKER_HOST"
	// EnvRace: "1" builds the regctl binary the tests start with -race.
	EnvRace = "REGCTL_TEST_RACE"
)

// Require returns the value of the environment variable name. When it is
// unset it skips the test with a message naming the variable and what it
// should point at (what), or fails the test if REGCTL_TEST_REQUIRE=1.
func Require(t testing.TB, name, what string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	SkipOrFail(t, fmt.Sprintf("%s is not set: set it to %s (scripts/test.sh starts and sets everything)", name, what))
	return ""
}

// SkipOrFail skips the test with msg, or fails it when
// REGCTL_TEST_REQUIRE=1.
func SkipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("%s; %s=1 forbids skipping", msg, EnvRequire)
	}
	t.Skip(msg)
}

// RequireBinary returns the path of the executable named by the environment
// variable env, or found as name in PATH when env is empty or unset. It
// skips or fails like Require when neither exists.
func RequireBinary(t testing.TB, env, name, what string) string {
	t.Helper()
	if env != "" {
		if p := os.Getenv(env); p != "" {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found in PATH: install %s", name, what)
	if env != "" {
		msg = fmt.Sprintf("%s is not set and %s", env, msg)
	}
	SkipOrFail(t, msg)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	addr, err := FreeAddr()
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	return addr.Port
}

// FreeAddr returns an address on 127.0.0.1 whose port was free a moment
// ago; FreePort without a test.
func FreeAddr() (*net.TCPAddr, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr), nil
}

// Result is what a finished command printed and how it exited.
type Result struct {
	Stdout, Stderr string
	Code           int // exit code; -1 if killed by a signal or the timeout
}

// Output is stdout and stderr together, for matching messages wherever the
// client printed them.
func (r Result) Output() string { return r.Stdout + r.Stderr }

// RunTimeout bounds every command started by Run.
const RunTimeout = 3 * time.Minute

// Run runs name with args, extra environment env (KEY=VALUE entries added to
// the test process's environment) and stdin (nothing if empty), and returns
// its output and exit code. It fails the test only if the command cannot be
// started; a non-zero exit is for the caller to judge. The command line and
// its output are logged, so they show when the test fails.
func Run(t testing.TB, env []string, stdin, name string, args ...string) Result {
	t.Helper()
	return run(t, env, func(cmd *exec.Cmd) (func(), error) {
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		return func() {}, nil
	}, name, args...)
}

// RunTTY is Run for a command that reads input from a terminal (a password
// prompt): its stdin is a new pseudo-terminal, with input typed into it, and
// its controlling terminal. What the terminal echoes is discarded, never
// logged; stdout and stderr stay pipes.
func RunTTY(t testing.TB, env []string, input, name string, args ...string) Result {
	t.Helper()
	return run(t, env, func(cmd *exec.Cmd) (func(), error) { return attachTTY(cmd, input) }, name, args...)
}

// run is Run with setup, which prepares cmd's stdin before it starts and
// returns what to release once it has ended.
func run(t testing.TB, env []string, setup func(*exec.Cmd) (func(), error), name string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), RunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	release, err := setup(cmd)
	if err != nil {
		t.Fatalf("run %s: %v", commandLine(name, args), err)
	}
	defer release()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ok bool
	if r.Code, ok = ExitCode(err); !ok {
		t.Fatalf("run %s: %v", commandLine(name, args), err)
	}
	if ctx.Err() != nil {
		r.Code = -1
		r.Stderr += fmt.Sprintf("\n[testenv: killed after %s]", RunTimeout)
	}
	t.Logf("$ %s  (exit %d, %s)%s%s", commandLine(name, args), r.Code,
		time.Since(start).Round(time.Millisecond), indent("stdout", r.Stdout), indent("stderr", r.Stderr))
	return r
}

// ExitCode returns the exit code that err, from exec.Cmd's Run or Wait,
// carries: 0 for nil, the status of an *exec.ExitError (-1 if a signal
// ended the command). ok is false for any other error: the command did not
// run, or its end was not seen.
func ExitCode(err error) (code int, ok bool) {
	if err == nil {
		return 0, true
	}
	if exitErr, isExit := errors.AsType[*exec.ExitError](err); isExit {
		return exitErr.ExitCode(), true
	}
	return 0, false
}

// MustRun is Run that fails the test unless the command exits 0.
func MustRun(t testing.TB, env []string, stdin, name string, args ...string) Result {
	t.Helper()
	r := Run(t, env, stdin, name, args...)
	if r.Code != 0 {
		t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", commandLine(name, args), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

func commandLine(name string, args []string) string {
	return strings.Join(append([]string{name}, args...), " ")
}

// indent formats one captured stream for a log line, cut to its last 4 KiB.
func indent(label, s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	if len(s) > 4096 {
		s = "…" + s[len(s)-4096:]
	}
	return "\n  " + label + ": " + strings.ReplaceAll(s, "\n", "\n    ")
}

// Poll calls check every interval until it returns nil or timeout passes,
// and returns the last error (nil on success). An error made by Stop ends
// it at once, and Poll returns the error Stop was given.
func Poll(timeout, interval time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if s, ok := errors.AsType[stopError](err); ok {
			return s.error
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %s: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// stopError ends Poll at once.
type stopError struct{ error }

// Stop returns an error that makes Poll give up at once, returning err.
func Stop(err error) error { return stopError{err} }
