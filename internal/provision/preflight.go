package provision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/regctl/regctl/internal/config"
)

// System probes the machine for the preflight checks. Tests replace every
// field; nothing here resolves a name unless LookupHost does.
type System struct {
	EUID      func() int
	OSRelease func() ([]byte, error) // contents of /etc/os-release
	PortFree  func(port int) error   // nil if nothing listens on the TCP port
	// PortOwner names the programs listening on the TCP port, such as
	// "python3 (pid 1234)"; none if it cannot tell (nil: not asked).
	PortOwner  func(port int) []string
	LookupHost func(ctx context.Context, name string) ([]string, error)
	HostAddrs  func() ([]net.IP, error)          // addresses of this host's interfaces
	FreeSpace  func(path string) (uint64, error) // bytes available to root
}

// LocalSystem returns the probes of the machine regctl runs on.
func LocalSystem() System {
	return System{
		EUID:       os.Geteuid,
		OSRelease:  func() ([]byte, error) { return os.ReadFile("/etc/os-release") },
		PortFree:   portFree,
		PortOwner:  func(port int) []string { return PortOwners("/proc", port) },
		LookupHost: net.DefaultResolver.LookupHost,
		HostAddrs:  hostAddrs,
		FreeSpace:  freeSpace,
	}
}

func portFree(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return err
	}
	return l.Close()
}

// PortOwners names the processes holding a TCP socket that listens on
// port, as "COMM (pid N)" or "COMM (pids N, M)", from the proc file system
// mounted at proc: the LISTEN sockets of net/tcp and net/tcp6, then the
// processes whose fd/ links point at their inodes ("socket:[INODE]").
// Processes it may not look into (not root) are left out; nil means it
// found none.
func PortOwners(proc string, port int) []string {
	inodes := map[string]bool{}
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		b, err := os.ReadFile(filepath.Join(proc, f))
		if err != nil {
			continue
		}
		for _, ino := range listenInodes(b, port) {
			inodes[ino] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil
	}
	var names []string // in the order found
	pids := map[string][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(proc, e.Name())
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			if err != nil {
				continue
			}
			ino, ok := strings.CutPrefix(link, "socket:[")
			if !ok || !inodes[strings.TrimSuffix(ino, "]")] {
				continue
			}
			comm, err := os.ReadFile(filepath.Join(dir, "comm"))
			name := strings.TrimSpace(string(comm))
			if err != nil || name == "" {
				name = "?"
			}
			if _, seen := pids[name]; !seen {
				names = append(names, name)
			}
			pids[name] = append(pids[name], pid)
			break
		}
	}
	var out []string
	for _, name := range names {
		ps := pids[name]
		slices.Sort(ps)
		strs := make([]string, 0, len(ps))
		for i, p := range ps {
			if i == 5 {
				strs = append(strs, "...")
				break
			}
			strs = append(strs, strconv.Itoa(p))
		}
		label := "pid"
		if len(ps) > 1 {
			label = "pids"
		}
		out = append(out, fmt.Sprintf("%s (%s %s)", name, label, strings.Join(strs, ", ")))
	}
	return out
}

// listenInodes returns the socket inodes of the lines of /proc/net/tcp or
// tcp6 (b) that listen (state 0A) on port.
func listenInodes(b []byte, port int) []string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		if i < 0 {
			continue
		}
		p, err := strconv.ParseUint(f[1][i+1:], 16, 16)
		if err != nil || int(p) != port || f[9] == "0" {
			continue
		}
		out = append(out, f[9])
	}
	return out
}

func hostAddrs() ([]net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP)
		}
	}
	return out, nil
}

// freeSpace reports the space available on the file system holding path,
// or its nearest existing parent.
func freeSpace(path string) (uint64, error) {
	for {
		var st syscall.Statfs_t
		err := syscall.Statfs(path, &st)
		if err == nil {
			return st.Bavail * uint64(st.Bsize), nil
		}
		parent := filepath.Dir(path)
		if !errors.Is(err, syscall.ENOENT) || parent == path {
			return 0, err
		}
		path = parent
	}
}

// Preflight check names, for --skip-check.
const (
	CheckRoot  = "root"
	CheckOS    = "os"
	CheckPorts = "ports"
	CheckDNS   = "dns"
	CheckDisk  = "disk"
)

// MinFreeSpace is what init needs on the root's file system: images,
// the registry's first blobs and the database.
const MinFreeSpace = 2 << 30

// CheckResult is one preflight check.
type CheckResult struct {
	Name string
	OK   bool
	Warn bool   // failed, but does not stop init
	Msg  string // what was found, and how to fix it when it failed
}

// PreflightOptions tune the checks.
type PreflightOptions struct {
	// Skip lists check names not to run.
	Skip []string
	// SelfSigned makes a DNS mismatch a warning: no CA validates the names.
	SelfSigned bool
	// PortsOurs reports whether ports 80 and 443 are held by this
	// deployment's own nginx (a re-run).
	PortsOurs func() bool
}

// Preflight runs the checks and returns them all; Failed tells whether init
// must stop.
func Preflight(ctx context.Context, sys System, c *config.Config, o PreflightOptions) []CheckResult {
	var out []CheckResult
	skip := func(name string) bool { return slices.Contains(o.Skip, name) }
	res := func(name string, err error, fix string) {
		r := CheckResult{Name: name, OK: err == nil}
		if err != nil {
			r.Msg = err.Error()
			if fix != "" {
				r.Msg += ": " + fix
			}
		}
		out = append(out, r)
	}

	if euid := sys.EUID(); euid != 0 {
		res(CheckRoot, fmt.Errorf("running as uid %d", euid), "run it as root (sudo regctl init ...)")
	} else {
		out = append(out, CheckResult{Name: CheckRoot, OK: true, Msg: "running as root"})
	}

	if !skip(CheckOS) {
		name, err := checkOS(sys)
		if err != nil {
			res(CheckOS, err, "regctl init supports "+SupportedSystems+"; elsewhere use `regctl render` and install by hand, or pass --skip-check os")
		} else {
			out = append(out, CheckResult{Name: CheckOS, OK: true, Msg: name})
		}
	}

	if !skip(CheckPorts) {
		var busy []int
		for _, p := range []int{80, 443} {
			if err := sys.PortFree(p); err != nil {
				busy = append(busy, p)
			}
		}
		switch {
		case len(busy) == 0:
			out = append(out, CheckResult{Name: CheckPorts, OK: true, Msg: "ports 80 and 443 are free"})
		case o.PortsOurs != nil && o.PortsOurs():
			out = append(out, CheckResult{Name: CheckPorts, OK: true, Msg: "ports 80 and 443 are served by this deployment's nginx"})
		default:
			// Name the programs, where /proc tells: "port 80 is in use by
			// python3 (pid 1234)".
			var found []string
			known := true
			for _, p := range busy {
				var owners []string
				if sys.PortOwner != nil {
					owners = sys.PortOwner(p)
				}
				if len(owners) == 0 {
					known = false
					found = append(found, fmt.Sprintf("port %d is in use", p))
					continue
				}
				found = append(found, fmt.Sprintf("port %d is in use by %s", p, strings.Join(owners, ", ")))
			}
			fix := "stop it (e.g. systemctl disable --now apache2 nginx)"
			if !known {
				fix = fmt.Sprintf("find the program with `ss -ltnp 'sport = :%d'` and ", busy[0]) + fix
			}
			res(CheckPorts, errors.New(strings.Join(found, "; ")), fix)
		}
	}

	if !skip(CheckDNS) {
		for _, r := range checkDNS(ctx, sys, c.Names()) {
			if !r.OK && o.SelfSigned {
				r.Warn = true
				r.Msg += " (only a warning with --self-signed)"
			}
			out = append(out, r)
		}
	}

	if !skip(CheckDisk) {
		free, err := sys.FreeSpace(c.Root)
		switch {
		case err != nil:
			res(CheckDisk, fmt.Errorf("free space at %s: %w", c.Root, err), "")
		case free < MinFreeSpace:
			res(CheckDisk, fmt.Errorf("only %d MiB free on the file system of %s", free>>20, c.Root),
				fmt.Sprintf("regctl needs at least %d MiB: free space, or set root in regctl.yaml to a larger file system", MinFreeSpace>>20))
		default:
			out = append(out, CheckResult{Name: CheckDisk, OK: true, Msg: fmt.Sprintf("%d GiB free at %s", free>>30, c.Root)})
		}
	}
	return out
}

// Failed reports whether any check failed without being a warning.
func Failed(results []CheckResult) bool {
	for _, r := range results {
		if !r.OK && !r.Warn {
			return true
		}
	}
	return false
}

// Distro reads the system's /etc/os-release.
func (s System) Distro() (Distro, error) {
	b, err := s.OSRelease()
	if err != nil {
		return Distro{}, fmt.Errorf("read %s: %w", OSReleaseFile, err)
	}
	return ParseOSRelease(b), nil
}

func checkOS(sys System) (string, error) {
	d, err := sys.Distro()
	if err != nil {
		return "", err
	}
	if !d.Supported() {
		return "", fmt.Errorf("unsupported system %s", d.Pretty)
	}
	return d.Pretty, nil
}

func checkDNS(ctx context.Context, sys System, names []string) []CheckResult {
	local, err := sys.HostAddrs()
	if err != nil {
		return []CheckResult{{Name: CheckDNS, Msg: fmt.Sprintf("list this host's addresses: %v", err)}}
	}
	var out []CheckResult
	for _, name := range names {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		addrs, err := sys.LookupHost(lctx, name)
		cancel()
		if err != nil {
			out = append(out, CheckResult{Name: CheckDNS, Msg: fmt.Sprintf("%s does not resolve (%v): create an A (and AAAA) record pointing at this host", name, err)})
			continue
		}
		match := false
		for _, a := range addrs {
			ip := net.ParseIP(a)
			for _, l := range local {
				if ip != nil && ip.Equal(l) {
					match = true
				}
			}
		}
		if match {
			out = append(out, CheckResult{Name: CheckDNS, OK: true, Msg: fmt.Sprintf("%s resolves to this host", name)})
			continue
		}
		out = append(out, CheckResult{Name: CheckDNS, Msg: fmt.Sprintf("%s resolves to %s, which is not an address of this host: point its A/AAAA record here (behind NAT, where the public address is not on an interface, pass --skip-check dns)",
			name, strings.Join(addrs, ", "))})
	}
	return out
}
