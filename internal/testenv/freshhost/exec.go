package freshhost

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

// HostPath is PATH inside the host, for commands run by Exec.
const HostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Cmd is a command for Exec or OutsideExec.
type Cmd struct {
	Args []string
	// Env is added to the environment: inside the host, to a clean one
	// (PATH=HostPath, HOME=/root, LANG=C.UTF-8, TERM=dumb, USER and
	// LOGNAME root, as a root login would have); outside, to the test
	// process's.
	Env []string
	// Stdin is the command's standard input (none if nil).
	Stdin io.Reader
	// Dir is the working directory (inside the host: default /).
	Dir string
	// Timeout kills the command (and everything it started in its process
	// group) after this long; default testenv.RunTimeout.
	Timeout time.Duration
	// Quiet logs only the command line and exit status, not the output
	// (for binary or huge output).
	Quiet bool
}

// Exec runs c inside the host as root, through nsenter into all the
// host's namespaces and its cgroup tree, and returns what it printed and
// its exit code. It fails the test only if the command cannot run at all;
// a non-zero exit is for the caller to judge. The command and its output
// are logged.
func (h *Host) Exec(t testing.TB, c Cmd) testenv.Result {
	t.Helper()
	start := time.Now()
	r, err := h.exec(c)
	if err != nil {
		t.Fatalf("freshhost: %s: run %s: %v", h.Name, strings.Join(c.Args, " "), err)
	}
	logResult(t, h.Name+"# ", c, r, time.Since(start))
	return r
}

// Run runs argv inside the host with stdin (none if empty); see Exec.
func (h *Host) Run(t testing.TB, stdin string, argv ...string) testenv.Result {
	t.Helper()
	return h.Exec(t, Cmd{Args: argv, Stdin: stringReader(stdin)})
}

// MustRun is Run that fails the test unless the command exits 0.
func (h *Host) MustRun(t testing.TB, stdin string, argv ...string) testenv.Result {
	t.Helper()
	return mustOK(t, h.Name+"# ", argv, h.Run(t, stdin, argv...))
}

// MustExec is Exec that fails the test unless the command exits 0.
func (h *Host) MustExec(t testing.TB, c Cmd) testenv.Result {
	t.Helper()
	return mustOK(t, h.Name+"# ", c.Args, h.Exec(t, c))
}

// Sh runs a shell script inside the host (sh -c script) and fails the test
// unless it exits 0.
func (h *Host) Sh(t testing.TB, script string) testenv.Result {
	t.Helper()
	return h.MustRun(t, "", "sh", "-c", script)
}

// exec runs c inside the host without logging; err means it could not run.
func (h *Host) exec(c Cmd) (testenv.Result, error) {
	h.mu.Lock()
	pid, inner := h.pid, h.inner
	h.mu.Unlock()
	if pid == 0 {
		return testenv.Result{Code: -1}, fmt.Errorf("%s is not running", h.Name)
	}
	env := []string{"PATH=" + HostPath, "HOME=/root", "LANG=C.UTF-8", "TERM=dumb", "USER=root", "LOGNAME=root", "SHELL=/bin/bash"}
	env = append(env, c.Env...)
	// sh moves itself into the host's root cgroup and becomes nsenter,
	// which enters the namespaces and runs env, which runs the command.
	// (While the host boots, commands stay in the test's cgroup.)
	var argv []string
	if inner != "" {
		argv = []string{"sh", "-c", `echo $$ >"$0" && exec "$@"`, inner}
	}
	argv = append(argv, "nsenter", "-t", strconv.Itoa(pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w", "--",
		"/usr/bin/env", "-i")
	if c.Dir != "" {
		argv = append(argv, "-C", c.Dir)
	}
	argv = append(append(argv, env...), c.Args...)
	return run(argv, nil, c)
}

// Outside runs argv in the outside network namespace, where /etc/hosts
// maps Options.Hostnames to the host and no DNS server is configured, as a
// process of the test machine with the test's environment; see Exec.
// (`ip netns exec NETNS ...` gets the same view, except for /sys.)
func (h *Host) Outside(t testing.TB, stdin string, argv ...string) testenv.Result {
	t.Helper()
	return h.OutsideExec(t, Cmd{Args: argv, Stdin: stringReader(stdin)})
}

// MustOutside is Outside that fails the test unless the command exits 0.
func (h *Host) MustOutside(t testing.TB, stdin string, argv ...string) testenv.Result {
	t.Helper()
	return mustOK(t, "outside$ ", argv, h.Outside(t, stdin, argv...))
}

// OutsideExec runs c in the outside network namespace; see Outside.
func (h *Host) OutsideExec(t testing.TB, c Cmd) testenv.Result {
	t.Helper()
	start := time.Now()
	r, err := run(h.outsideArgv(c.Args), os.Environ(), c)
	if err != nil {
		t.Fatalf("freshhost: outside %s: run %s: %v", h.Netns, strings.Join(c.Args, " "), err)
	}
	logResult(t, "outside$ ", c, r, time.Since(start))
	return r
}

// outsideArgv wraps argv to run in the outside namespace: like `ip netns
// exec`, it mounts each entry of /etc/netns/NETNS over its namesake in
// /etc (in a mount namespace of its own), but it leaves /sys alone, so
// that cgroups stay visible (dockerd needs them). Every step execs the
// next: the command keeps the PID the wrapper started with.
func (h *Host) outsideArgv(argv []string) []string {
	return append([]string{
		"nsenter", "--net=" + filepath.Join("/run/netns", h.Netns), "--",
		"unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", `for f in "$0"/*; do
	[ -e "$f" ] && [ -e "/etc/${f##*/}" ] && mount --bind "$f" "/etc/${f##*/}"
done
exec "$@"`, filepath.Join("/etc/netns", h.Netns),
	}, argv...)
}

// run runs argv with environment env (nil: exactly the test process's
// for os/exec's default) and c's stdin, dir (outside only) and timeout.
func run(argv, env []string, c Cmd) (testenv.Result, error) {
	if c.Timeout <= 0 {
		c.Timeout = testenv.RunTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if env != nil {
		cmd.Env = append(env, c.Env...)
		cmd.Dir = c.Dir
	}
	cmd.Stdin = c.Stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = cmdAttr()
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := testenv.Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var ok bool
	if r.Code, ok = testenv.ExitCode(err); !ok && ctx.Err() == nil {
		return r, err
	}
	if ctx.Err() != nil {
		r.Code = -1
		r.Stderr += fmt.Sprintf("\n[freshhost: killed after %s]", c.Timeout)
	}
	return r, nil
}

func stringReader(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}

func mustOK(t testing.TB, where string, argv []string, r testenv.Result) testenv.Result {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("%s%s: exit %d\nstdout:\n%s\nstderr:\n%s", where, strings.Join(argv, " "), r.Code, tail(r.Stdout, 8<<10), tail(r.Stderr, 8<<10))
	}
	return r
}

func logResult(t testing.TB, where string, c Cmd, r testenv.Result, took time.Duration) {
	t.Helper()
	out := ""
	if !c.Quiet {
		out = indent("stdout", r.Stdout) + indent("stderr", r.Stderr)
	}
	t.Logf("%s%s  (exit %d, %s)%s", where, strings.Join(c.Args, " "), r.Code, took.Round(time.Millisecond), out)
}

func tail(s string, maxLen int) string {
	if len(s) > maxLen {
		return "…" + s[len(s)-maxLen:]
	}
	return s
}

// indent formats one captured stream for a log line, cut to its last 4 KiB.
func indent(label, s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "\n  " + label + ": " + strings.ReplaceAll(tail(s, 4096), "\n", "\n    ")
}

// CopyIn writes data to the file dst inside the host (creating its
// directory), with mode, atomically (a temporary file renamed).
func (h *Host) CopyIn(t testing.TB, dst string, data []byte, mode os.FileMode) {
	t.Helper()
	h.copyIn(t, dst, bytes.NewReader(data), mode)
}

// CopyFileIn copies the file src of the test machine to dst inside the
// host; see CopyIn. For a big file that every boot needs, Options.Binds is
// cheaper.
func (h *Host) CopyFileIn(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h.copyIn(t, dst, f, mode)
}

func (h *Host) copyIn(t testing.TB, dst string, r io.Reader, mode os.FileMode) {
	t.Helper()
	h.MustExec(t, Cmd{
		Args: []string{"sh", "-c", `set -e; mkdir -p "$(dirname "$1")"; cat >"$1.freshhost-tmp"; chmod "$2" "$1.freshhost-tmp"; mv -f "$1.freshhost-tmp" "$1"`,
			"sh", dst, strconv.FormatUint(uint64(mode.Perm()), 8)},
		Stdin: r,
		Quiet: true,
	})
}

// ReadFile returns the content of the file path inside the host.
func (h *Host) ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	return []byte(h.MustExec(t, Cmd{Args: []string{"cat", "--", path}, Quiet: true}).Stdout)
}

// LoadImages loads docker-archive tarballs of the test machine (such as
// Artifacts.Images.All()) into the host's dockerd with `docker load`, which
// needs the docker CLI and a running dockerd in the host. It logs the time
// each took.
func (h *Host) LoadImages(t testing.TB, tarballs ...string) {
	t.Helper()
	for _, tb := range tarballs {
		f, err := os.Open(tb)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r := h.MustExec(t, Cmd{Args: []string{"docker", "load"}, Stdin: f, Timeout: 5 * time.Minute})
		f.Close()
		fi, _ := os.Stat(tb)
		t.Logf("freshhost: %s: loaded %s (%d MiB) in %s: %s", h.Name, filepath.Base(tb), fi.Size()>>20,
			time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.Stdout))
	}
}

// DialContext connects from the outside namespace, as a client there
// would. addr is IP:port or NAME:port with NAME one of Options.Hostnames;
// no DNS is used. Use it as an http.Transport's or a gRPC dialer's dial
// function.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return h.dial(ctx, netip.Addr{}, network, addr)
}

// DialFrom is DialContext from the local address local, which must be an
// address of the outside namespace (one added to OuterIface, say): for a
// second client, seen by the host as another address.
func (h *Host) DialFrom(local netip.Addr) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return h.dial(ctx, local, network, addr)
	}
}

func (h *Host) dial(ctx context.Context, local netip.Addr, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if !slices.Contains(h.Opts.Hostnames, host) {
			return nil, fmt.Errorf("freshhost: %s: %q is neither an address nor one of Options.Hostnames %v", h.Name, host, h.Opts.Hostnames)
		}
		ip = h.IP
	}
	var conn net.Conn
	err = inNetns(filepath.Join("/run/netns", h.Netns), func() error {
		var d net.Dialer
		if local.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
		}
		var err error
		// A literal address: one connect, on this thread.
		conn, err = d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		return err
	})
	return conn, err
}

// Transport returns an HTTP transport whose connections start in the
// outside namespace (see DialContext), with no proxy. Set its
// TLSClientConfig to trust the host's certificates.
func (h *Host) Transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = h.DialContext
	return tr
}

// HTTPClient returns a client using Transport, with a timeout.
func (h *Host) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Transport: h.Transport(), Timeout: timeout}
}

// StartOutside starts a long-running server (an ACME CA such as Pebble, a
// DNS server, a client daemon) in the outside namespace with
// testenv.Start: same logging, readiness (Proc.WaitReady) and cleanup.
// It sees /etc as Outside's commands do, and listens on OuterIP (or all
// addresses of the namespace), where the host reaches it.
func (h *Host) StartOutside(t testing.TB, name string, env []string, bin string, args ...string) *testenv.Proc {
	t.Helper()
	// The wrapper execs bin: testenv.Start's SIGTERM reaches it.
	argv := h.outsideArgv(append([]string{bin}, args...))
	return testenv.Start(t, name, env, argv[0], argv[1:]...)
}

// OutsideFile writes data to path (below /etc) as commands run by Outside
// (and OutsideDockerd) see it, without touching the test machine's /etc:
// the file goes to /etc/netns/NETNS/..., which they see mounted over /etc
// (as `ip netns exec` does). That replaces the whole top-level entry: writing
// /etc/docker/certs.d/NAME/ca.crt hides the machine's /etc/docker from
// them (and it must exist: a mount needs a target). hosts and resolv.conf
// are the harness's own.
func (h *Host) OutsideFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	rel, ok := strings.CutPrefix(filepath.Clean(path), "/etc/")
	if !ok || rel == "hosts" || rel == "resolv.conf" {
		t.Fatalf("freshhost: OutsideFile(%q): want a path below /etc other than /etc/hosts and /etc/resolv.conf", path)
	}
	dst := filepath.Join("/etc/netns", h.Netns, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
}

// OutsideDockerd starts a dockerd in the outside namespace, so that docker
// CLI commands (login, push, pull) reach the host as an outside client's
// would, and returns its DOCKER_HOST (a unix socket: the CLI itself can
// run anywhere). Like testenv.StartDockerd it has no networks of its own
// and uses vfs. It trusts what OutsideFile put below /etc/docker/certs.d.
//
// args are added to dockerd's (--insecure-registry=NAME:PORT...).
func (h *Host) OutsideDockerd(t testing.TB, args ...string) string {
	t.Helper()
	bin := testenv.RequireBinary(t, "", "dockerd", "Debian's docker.io")
	docker := testenv.RequireBinary(t, "", "docker", "the docker CLI")
	dir, err := os.MkdirTemp("", "fh-dockerd") // short: a socket path fits 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	dargs, host := testenv.DockerdArgs(dir)
	p := h.StartOutside(t, "dockerd-outside-"+h.Name, nil, bin, append(dargs, args...)...)
	p.WaitReady(t, 60*time.Second, testenv.DockerInfoCheck(t, []string{"DOCKER_HOST=" + host, "DOCKER_CONFIG=" + dir}, docker))
	return host
}
