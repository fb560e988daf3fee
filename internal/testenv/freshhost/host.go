package freshhost

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

// Variant is which cached rootfs a host boots.
type Variant string

const (
	// Bare has no docker, compose, ufw, fail2ban or logrotate.
	Bare Variant = "bare"
	// Full has them installed (docker.io, docker-cli, docker-compose...),
	// and docker running.
	Full Variant = "full"
)

// Bind is a directory or file of the test machine mounted into the host.
type Bind struct {
	Src, Dst string
	ReadOnly bool
}

// RepoDir is where Options.MountRepo mounts the local apt repository inside
// the host (read-only).
const RepoDir = "/srv/regctl-apt"

// DefaultSubnet is the link between a host and its outside namespace:
// TEST-NET-2, documentation addresses outside Docker's default address
// pools. Every host has the same addresses, each in namespaces of its own.
var DefaultSubnet = netip.MustParsePrefix("198.51.100.0/24")

// Options say what to boot.
type Options struct {
	// Variant is the rootfs; default Bare.
	Variant Variant
	// Persistent keeps the host's changes in a directory on disk rather
	// than in memory, so that Reboot can restart it with its state (files,
	// docker's images and containers, its machine ID). Volatile hosts
	// cannot reboot.
	Persistent bool
	// MountRepo mounts the local apt repository at RepoDir and makes it the
	// host's only apt source (/etc/apt/sources.list.d/local.list), so that
	// `apt-get update && apt-get install docker.io ...` works offline.
	// The repository holds what Full adds to Bare, with their dependencies
	// and recommends, and docker-compose-v2: a stand-in for Ubuntu's
	// package of that name, depending on docker-compose and docker-cli.
	MountRepo bool
	// Binds are mounted into the host at every boot (for example the regctl
	// binary, read-only, at /usr/local/bin/regctl).
	Binds []Bind
	// Hostname is the host's hostname; default its machine name (Host.Name).
	Hostname string
	// Hostnames resolve to the host's address in the outside namespace
	// (Host.Outside's /etc/hosts, Host.DialContext).
	Hostnames []string
	// Subnet is the link to the outside namespace: the host gets its
	// 10th address, the outside end its first. Default DefaultSubnet.
	Subnet netip.Prefix
	// BootTimeout bounds each boot, until systemd reports running or
	// degraded; default 2 minutes.
	BootTimeout time.Duration
	// ShareOutside puts this host's outside end in that host's outside
	// namespace (Netns) instead of a new one: two hosts of one deployment
	// and the servers they share (a store, a bucket, a load balancer),
	// which listen on either OuterIP and reach both hosts. Subnet must
	// not overlap that host's, nor DefaultSubnet be left to both: pick
	// another (SecondSubnet, say). Each outer address is local to the
	// namespace, so a host reaches the other's outer address without
	// forwarding; the namespace still forwards nothing, so the hosts never
	// reach each other. Options.Hostnames are added to the namespace's
	// /etc/hosts (the first host's entry wins for a name both give).
	// That host must outlive this one (boot it first, in the same test).
	ShareOutside *Host
}

// SecondSubnet is the link of a second host that shares an outside
// namespace (Options.ShareOutside): TEST-NET-1.
var SecondSubnet = netip.MustParsePrefix("192.0.2.0/24")

// Host is a booted fresh host.
type Host struct {
	// Name is the machine name, "rcfh-" and 6 hex digits; every resource of
	// the host on the test machine carries it.
	Name string
	// IP is the host's address (on its eth0), OuterIP the outside end's;
	// Prefix is the link between them. Reach IP only from the outside
	// namespace (Outside, DialContext, Transport): in the test machine's
	// own namespace it is no local address, and a connection to it would
	// leave through the machine's default route.
	IP, OuterIP netip.Addr
	Prefix      netip.Prefix
	// Netns is the outside network namespace (`ip netns exec NETNS ...`),
	// where Outside runs commands. It exists as long as the host does.
	Netns string
	// OuterIface is the outside end of the veth pair, in Netns.
	OuterIface string
	// Rootfs is the cached rootfs the host boots from (never modified).
	Rootfs string
	// StateDir holds the host's files on the test machine: the console log
	// of each boot and, for a persistent host, its overlay and
	// /var/lib/docker.
	StateDir string
	// Opts are the options the host was booted with.
	Opts Options
	// Artifacts are the cached builds (images to load, the repository).
	Artifacts *Artifacts

	hostNetns string // the host's own network namespace, new at every boot
	uuid      string // nspawn --uuid: the machine ID systemd picks, the same at every boot
	cgroup    string // the host's cgroup directory on the test machine

	mu     sync.Mutex
	boots  int
	proc   *nspawn
	pid    int    // the container's init (systemd), as the test machine sees it
	inner  string // cgroup.procs of the container's root cgroup
	mirror bool   // Mirror's registry runs
}

// nspawn is one run of systemd-nspawn.
type nspawn struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

func (p *nspawn) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode is nspawn's exit status once it has exited (133: the container
// rebooted).
func (p *nspawn) exitCode() int {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		return -1
	}
	return 0
}

func (p *nspawn) log(maxLen int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("[read %s: %v]", p.logPath, err)
	}
	if maxLen > 0 && len(b) > maxLen {
		b = append([]byte("…"), b[len(b)-maxLen:]...)
	}
	return string(b)
}

// namePrefix starts the name of everything a host creates on the test
// machine: machine names, network namespaces, cgroups, state directories.
const namePrefix = "rcfh-"

// StateRoot holds one directory per live host (Host.StateDir).
const StateRoot = "/var/tmp/regctl-freshhost"

// Boot builds the cache if needed (see Cache), boots a host and waits until
// systemd inside reports running or degraded (failed units are logged).
// At cleanup the host is powered off and everything it made on the test
// machine is removed; if the test failed, the end of its journal and its
// console output are logged first.
func Boot(t testing.TB, o Options) *Host {
	t.Helper()
	a := Cache(t)
	removeLeftoversOnce(t)
	if o.Variant == "" {
		o.Variant = Bare
	}
	if !o.Subnet.IsValid() {
		o.Subnet = DefaultSubnet
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 2 * time.Minute
	}
	h := &Host{Opts: o, Artifacts: a, Prefix: o.Subnet.Masked()}
	switch o.Variant {
	case Bare:
		h.Rootfs = a.RootfsBare
	case Full:
		h.Rootfs = a.RootfsFull
	default:
		t.Fatalf("freshhost: unknown variant %q", o.Variant)
	}
	h.OuterIP = nthAddr(h.Prefix, 1)
	h.IP = nthAddr(h.Prefix, 10)
	if !h.Prefix.Contains(h.IP) {
		t.Fatalf("freshhost: subnet %s is too small", h.Prefix)
	}
	if o.ShareOutside != nil && o.ShareOutside.Prefix.Overlaps(h.Prefix) {
		t.Fatalf("freshhost: subnet %s overlaps %s's %s, whose outside namespace it would share: set Options.Subnet (SecondSubnet, say)", h.Prefix, o.ShareOutside.Name, o.ShareOutside.Prefix)
	}

	id := randomID()
	h.uuid = randomUUID()
	h.Name = namePrefix + id
	h.Netns = h.Name + "-out"
	if o.ShareOutside != nil {
		h.Netns = o.ShareOutside.Netns
	}
	h.hostNetns = h.Name + "-in"
	h.OuterIface = h.Name
	h.StateDir = filepath.Join(StateRoot, id)
	cg, err := cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	h.cgroup = filepath.Join(cg, h.Name)
	if err := claim(h.StateDir); err != nil {
		t.Fatalf("freshhost: %v", err)
	}
	t.Cleanup(func() { h.destroy(t) })

	if o.ShareOutside != nil {
		h.mustJoinOutside(t)
	} else {
		h.mustSetupOutside(t)
	}
	h.start(t)
	if o.MountRepo {
		h.MustRun(t, "", "sh", "-c", `set -e
rm -f /etc/apt/sources.list
find /etc/apt/sources.list.d -mindepth 1 -maxdepth 1 ! -name local.list -delete
printf 'deb [trusted=yes] file:`+RepoDir+` ./\n' >/etc/apt/sources.list.d/local.list`)
	}
	return h
}

// randomUUID returns 32 random hex digits: a machine ID, and the container
// UUID nspawn hands to systemd, which makes it the machine ID of a rootfs
// whose /etc/machine-id is empty.
func randomUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return hex.EncodeToString(b)
}

func randomID() string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// nthAddr returns the address n places after p's network address.
func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Masked().Addr()
	for range n {
		a = a.Next()
	}
	return a
}

// mustSetupOutside creates the outside namespace and its /etc/netns files.
func (h *Host) mustSetupOutside(t testing.TB) {
	t.Helper()
	etc := filepath.Join("/etc/netns", h.Netns)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if len(h.Opts.Hostnames) > 0 {
		hosts += h.IP.String() + "\t" + strings.Join(h.Opts.Hostnames, " ") + "\n"
	}
	// No resolver outside: names resolve from hosts or not at all.
	for name, content := range map[string]string{
		"hosts":       hosts,
		"resolv.conf": "# freshhost: no DNS in the outside namespace\n",
	} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.mustIP(t, "netns", "add", h.Netns)
	h.mustIP(t, "-n", h.Netns, "link", "set", "lo", "up")
	// A new namespace does not forward; say so anyway: the outside end
	// must never route the host's packets anywhere.
	mustCmd(t, "ip", "netns", "exec", h.Netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
	exec.Command("ip", "netns", "exec", h.Netns, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=0").Run() // if IPv6 is on
}

// mustJoinOutside adds the host's Hostnames to the shared outside
// namespace's /etc/hosts (Options.ShareOutside).
func (h *Host) mustJoinOutside(t testing.TB) {
	t.Helper()
	if len(h.Opts.Hostnames) == 0 {
		return
	}
	f, err := os.OpenFile(filepath.Join("/etc/netns", h.Netns, "hosts"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("freshhost: %s shares %s's outside namespace: %v", h.Name, h.Opts.ShareOutside.Name, err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s\t%s\n", h.IP, strings.Join(h.Opts.Hostnames, " ")); err != nil {
		t.Fatal(err)
	}
}

// mustSetupHostNetns makes the host's network namespace for one boot: its
// end of a new veth pair is eth0, with IP and a default route via OuterIP.
// Each boot gets a new one, as a rebooted machine starts with empty
// firewall rules and no docker bridges.
func (h *Host) mustSetupHostNetns(t testing.TB) {
	t.Helper()
	// The previous boot's: deleting the outer end of the veth pair takes
	// the inner one with it now, not when the kernel gets round to
	// destroying the old namespace.
	exec.Command("ip", "-n", h.Netns, "link", "del", h.OuterIface).Run()
	exec.Command("ip", "netns", "del", h.hostNetns).Run()
	h.mustIP(t, "netns", "add", h.hostNetns)
	h.mustIP(t, "-n", h.Netns, "link", "add", h.OuterIface, "type", "veth", "peer", "name", "eth0", "netns", h.hostNetns)
	bits := strconv.Itoa(h.Prefix.Bits())
	h.mustIP(t, "-n", h.Netns, "addr", "replace", h.OuterIP.String()+"/"+bits, "dev", h.OuterIface)
	h.mustIP(t, "-n", h.Netns, "link", "set", h.OuterIface, "up")
	h.mustIP(t, "-n", h.hostNetns, "link", "set", "lo", "up")
	h.mustIP(t, "-n", h.hostNetns, "addr", "add", h.IP.String()+"/"+bits, "dev", "eth0")
	h.mustIP(t, "-n", h.hostNetns, "link", "set", "eth0", "up")
	h.mustIP(t, "-n", h.hostNetns, "route", "add", "default", "via", h.OuterIP.String())
}

func (h *Host) mustIP(t testing.TB, args ...string) { t.Helper(); mustCmd(t, "ip", args...) }

// mustCmd runs a short command on the test machine, quietly unless it fails.
func mustCmd(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("freshhost: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// start boots the host once and waits for systemd.
func (h *Host) start(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	h.boots++
	boot := h.boots
	h.mu.Unlock()
	began := time.Now()

	h.mustSetupHostNetns(t)
	removeCgroup(h.cgroup) // the previous boot's
	if err := os.Mkdir(h.cgroup, 0o755); err != nil {
		t.Fatalf("freshhost: %v", err)
	}

	args := []string{
		"-D", h.Rootfs,
		"--machine=" + h.Name,
		"--uuid=" + h.uuid,
		"--boot",
		"--network-namespace-path=/run/netns/" + h.hostNetns,
		// A namespace of our own is private networking to the host, but
		// nspawn grants CAP_NET_ADMIN (iptables, docker's bridges) only
		// for the networks it makes itself.
		"--capability=CAP_NET_ADMIN",
		"--register=no", "--keep-unit",
		// docker needs the session keyring and bpf_prog_query.
		"--system-call-filter=@keyring bpf",
		"--resolv-conf=off", "--timezone=off", "--link-journal=no",
		"--console=read-only",
	}
	if h.Opts.Hostname != "" {
		args = append(args, "--hostname="+h.Opts.Hostname)
	}
	var overlay string
	if h.Opts.Persistent {
		// Our own overlay, in a mount namespace that dies with nspawn:
		// the upper layer stays on disk for the next boot.
		root := filepath.Join(h.StateDir, "root")
		for _, d := range []string{"upper", "work", "root", "docker"} {
			if err := os.MkdirAll(filepath.Join(h.StateDir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		overlay = fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", h.Rootfs,
			filepath.Join(h.StateDir, "upper"), filepath.Join(h.StateDir, "work"))
		args[1] = root
		// dockerd's overlay2 cannot sit on overlayfs.
		args = append(args, "--bind="+filepath.Join(h.StateDir, "docker")+":/var/lib/docker")
	} else {
		args = append(args, "--volatile=overlay", "--tmpfs=/var/lib/docker")
	}
	if h.Opts.MountRepo {
		args = append(args, "--bind-ro="+h.Artifacts.Repo+":"+RepoDir)
	}
	for _, b := range h.Opts.Binds {
		opt := "--bind="
		if b.ReadOnly {
			opt = "--bind-ro="
		}
		args = append(args, opt+b.Src+":"+b.Dst)
	}

	// sh moves itself into the host's cgroup, then becomes nspawn (through
	// unshare and a mount for a persistent host): the same process.
	wrapper := []string{"sh", "-c", `echo $$ >"$0" && exec "$@"`, filepath.Join(h.cgroup, "cgroup.procs")}
	if overlay != "" {
		wrapper = append(wrapper, "unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mount -t overlay freshhost -o "$0" "$1" && shift && exec "$@"`, overlay, args[1])
	}
	argv := append(append(wrapper, "systemd-nspawn"), args...)

	logPath := filepath.Join(h.StateDir, fmt.Sprintf("console-%d.log", boot))
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(),
		"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1", // runc wants cgroup2 inside
		// Writable /proc/sys/net (docker sets ip_forward), as nspawn
		// leaves it for the networks it makes itself.
		"SYSTEMD_NSPAWN_API_VFS_WRITABLE=network",
		"TERM=dumb", "SYSTEMD_COLORS=0", "LANG=C.UTF-8")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = nspawnAttr()
	p := &nspawn{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	t.Logf("freshhost: boot %s (#%d, %s, %s): %s", h.Name, boot, h.Opts.Variant, h.mode(), strings.Join(argv, " "))
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("freshhost: start systemd-nspawn: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	h.mu.Lock()
	h.proc, h.pid, h.inner = p, 0, ""
	h.mu.Unlock()

	var pid int
	err = testenv.Poll(30*time.Second, 50*time.Millisecond, func() error {
		if p.exited() {
			return testenv.Stop(fmt.Errorf("systemd-nspawn exited: %v", p.err)) //nolint:errorlint // p.err is nil when systemd-nspawn exited 0, and %w would print %!w(<nil>)
		}
		var err error
		pid, err = containerInit(cmd.Process.Pid)
		return err
	})
	if err != nil {
		t.Fatalf("freshhost: %s: no container init: %v\n--- console:\n%s", h.Name, err, p.log(16<<10))
	}
	h.mu.Lock()
	h.pid, h.inner = pid, ""
	h.mu.Unlock()

	var state string
	err = testenv.Poll(h.Opts.BootTimeout, 200*time.Millisecond, func() error {
		if p.exited() {
			return testenv.Stop(fmt.Errorf("systemd-nspawn exited: %v", p.err)) //nolint:errorlint // p.err is nil when systemd-nspawn exited 0, and %w would print %!w(<nil>)
		}
		r, err := h.exec(Cmd{Args: []string{"systemctl", "is-system-running"}, Timeout: 10 * time.Second})
		if err != nil {
			return err
		}
		state = strings.TrimSpace(r.Stdout)
		if state == "running" || state == "degraded" {
			return nil
		}
		return fmt.Errorf("systemctl is-system-running: %q %s", state, strings.TrimSpace(r.Stderr))
	})
	if err != nil {
		t.Fatalf("freshhost: %s did not boot: %v\n--- console:\n%s", h.Name, err, p.log(16<<10))
	}
	// Now systemd sits in /init.scope of its cgroup tree: the tree's root
	// is where commands go from now on.
	inner, err := innerCgroup(pid)
	if err != nil {
		t.Fatalf("freshhost: %s: %v", h.Name, err)
	}
	h.mu.Lock()
	h.inner = inner
	h.mu.Unlock()
	t.Logf("freshhost: %s is %s after %s (init PID %d, %s on eth0, outside namespace %s at %s)",
		h.Name, state, time.Since(began).Round(time.Millisecond), pid, h.IP, h.Netns, h.OuterIP)
	if state != "running" {
		t.Logf("freshhost: %s failed units:\n%s", h.Name, h.failedUnits())
	}
}

func (h *Host) mode() string {
	if h.Opts.Persistent {
		return "persistent"
	}
	return "volatile"
}

// containerInit finds the container's PID 1 among nspawn's children: the
// process whose innermost PID is 1, once it runs systemd.
func containerInit(nspawnPID int) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		var ppid, nspid string
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				nspid = v
			}
		}
		if ppid != strconv.Itoa(nspawnPID) {
			continue
		}
		f := strings.Fields(nspid)
		if len(f) < 2 || f[len(f)-1] != "1" {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if strings.TrimSpace(string(comm)) != "systemd" {
			return 0, fmt.Errorf("PID %d runs %q, not yet systemd", pid, strings.TrimSpace(string(comm)))
		}
		return pid, nil
	}
	return 0, fmt.Errorf("no child of systemd-nspawn (PID %d) is a PID 1", nspawnPID)
}

// innerCgroup returns the cgroup.procs file of the container's root cgroup
// (the cgroup its systemd sees as "/"), where commands run by Exec go.
func innerCgroup(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	root, err := cgroup2Root()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			// Once booted, systemd is in /init.scope of its own tree.
			if path.Base(p) != "init.scope" {
				return "", fmt.Errorf("PID %d (systemd) is in cgroup %s, not in an init.scope", pid, p)
			}
			return filepath.Join(root, path.Dir(p), "cgroup.procs"), nil
		}
	}
	return "", fmt.Errorf("PID %d has no cgroup2 path", pid)
}

// PID is the host's init process as the test machine sees it (0 while
// the host is down).
func (h *Host) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pid
}

// Running reports whether the host is up.
func (h *Host) Running() bool {
	h.mu.Lock()
	p := h.proc
	h.mu.Unlock()
	return p != nil && !p.exited()
}

// Console returns the console output (systemd's boot and shutdown
// messages) of the current or last boot, at most its last maxLen bytes (all
// if 0).
func (h *Host) Console(maxLen int) string {
	h.mu.Lock()
	p := h.proc
	h.mu.Unlock()
	if p == nil {
		return ""
	}
	return p.log(maxLen)
}

// StopTimeout is how long PowerOff and Reboot wait for an orderly
// shutdown before killing the host.
const StopTimeout = 30 * time.Second

// Reboot reboots a persistent host (`systemctl reboot` inside, then boot
// again on the same overlay) and waits until it is up again. The host keeps
// its files, /var/lib/docker and machine ID; like a real machine's, its
// network namespace (firewall rules, docker's bridges) starts empty. It
// logs how long the reboot took.
func (h *Host) Reboot(t testing.TB) {
	t.Helper()
	if !h.Opts.Persistent {
		t.Fatalf("freshhost: %s is volatile: only a host booted with Options.Persistent can reboot", h.Name)
	}
	start := time.Now()
	h.shutdown(t, "reboot")
	h.start(t)
	t.Logf("freshhost: %s rebooted in %s", h.Name, time.Since(start).Round(time.Millisecond))
}

// PowerOff shuts the host down (`systemctl poweroff` inside; killed after
// StopTimeout). Cleanup does this anyway; call it to check what a shutdown
// does, or to stop a host early.
func (h *Host) PowerOff(t testing.TB) {
	t.Helper()
	h.shutdown(t, "poweroff")
}

// shutdown asks systemd to reboot or power off and waits for nspawn to exit.
func (h *Host) shutdown(t testing.TB, verb string) {
	t.Helper()
	h.mu.Lock()
	p := h.proc
	h.mu.Unlock()
	if p == nil || p.exited() {
		return
	}
	start := time.Now()
	// --no-block: systemctl returns before the processes it runs in die.
	if r, err := h.exec(Cmd{Args: []string{"systemctl", "--no-block", verb}, Timeout: 10 * time.Second}); err != nil || r.Code != 0 {
		t.Logf("freshhost: %s: systemctl %s: %v %s", h.Name, verb, err, r.Output())
		p.cmd.Process.Signal(syscall.SIGTERM) // nspawn halts the container
	}
	select {
	case <-p.done:
	case <-time.After(StopTimeout):
		t.Errorf("freshhost: %s did not %s within %s; killing it", h.Name, verb, StopTimeout)
		p.cmd.Process.Kill()
		<-p.done
	}
	h.mu.Lock()
	h.pid, h.inner = 0, ""
	h.mu.Unlock()
	want := 0
	if verb == "reboot" {
		want = 133 // nspawn's "the container rebooted"
	}
	if code := p.exitCode(); code != want {
		t.Logf("freshhost: %s: systemd-nspawn exited with %d after %s (want %d)", h.Name, code, verb, want)
	}
	t.Logf("freshhost: %s: %s took %s", h.Name, verb, time.Since(start).Round(time.Millisecond))
}

// destroy is the cleanup: logs on failure, power off, remove everything.
func (h *Host) destroy(t testing.TB) {
	h.mu.Lock()
	p := h.proc
	h.mu.Unlock()
	if t.Failed() && p != nil {
		if !p.exited() {
			t.Logf("--- %s: journalctl -b (last 200 lines):\n%s", h.Name, h.JournalTail(200))
			t.Logf("--- %s: failed units:\n%s", h.Name, h.failedUnits())
		}
		t.Logf("--- %s: console (%s), last 8 KiB:\n%s", h.Name, p.logPath, p.log(8<<10))
	}
	if p != nil && !p.exited() {
		// Volatile hosts hold nothing worth an orderly shutdown.
		if h.Opts.Persistent {
			h.shutdown(t, "poweroff")
		} else {
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if err := removeHost(h.Name, h.StateDir, h.cgroup); err != nil {
		t.Errorf("freshhost: remove %s: %v", h.Name, err)
	}
}

// JournalTail returns the last n lines of the host's journal of this boot
// (or why it could not be read).
func (h *Host) JournalTail(n int) string {
	r, err := h.exec(Cmd{Args: []string{"journalctl", "-b", "--no-pager", "-q", "-n", strconv.Itoa(n)}, Timeout: 30 * time.Second})
	if err != nil {
		return fmt.Sprintf("[journalctl: %v]", err)
	}
	return r.Output()
}

func (h *Host) failedUnits() string {
	r, err := h.exec(Cmd{Args: []string{"systemctl", "list-units", "--failed", "--no-pager", "--plain", "--no-legend"}, Timeout: 30 * time.Second})
	if err != nil {
		return fmt.Sprintf("[systemctl: %v]", err)
	}
	if s := strings.TrimSpace(r.Output()); s != "" {
		return s
	}
	return "(none)"
}

// FailedUnits returns the names of the host's failed units.
func (h *Host) FailedUnits(t testing.TB) []string {
	t.Helper()
	r := h.MustRun(t, "", "systemctl", "list-units", "--failed", "--no-pager", "--plain", "--no-legend")
	var units []string
	for _, line := range strings.Split(r.Stdout, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			units = append(units, f[0])
		}
	}
	return units
}

// SystemState returns `systemctl is-system-running` (running, degraded...).
func (h *Host) SystemState(t testing.TB) string {
	t.Helper()
	return strings.TrimSpace(h.Run(t, "", "systemctl", "is-system-running").Stdout)
}
