//go:build integration

package benchstack

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/testenv/freshhost"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBuilds()
	os.Exit(code)
}

// registryName is the registry's name: /etc/hosts maps it to the host's
// address inside the host, and the harness outside.
const registryName = "registry.regctl.test"

// The goals of issue #12.
const (
	goalInit       = 60 * time.Second
	goalInitAgain  = 5 * time.Second
	goalRatio      = 0.90 // nginx's throughput over the registry's own
	goalTokenShare = 0.02 // of a pull's wall time
)

// The image: 8 layers of 128 MiB, 1 GiB.
const (
	imageLayers = 8
	layerSize   = 128 << 20
)

// Paths inside the host.
const (
	clientBin = "/usr/local/bin/regctl-benchclient"
	caFile    = "/opt/regctl/certs/live/" + registryName + "/fullchain.pem"
)

// EnvRounds is how many times each path pushes and pulls (default 3).
const EnvRounds = "REGCTL_BENCH_ROUNDS"

// EnvPaths lists the paths to measure, comma-separated (default all:
// "nginx,nginx-http1,direct,outside").
const EnvPaths = "REGCTL_BENCH_PATHS"

// path is one way from the client to the registry.
type path struct {
	name, desc string
	direct     bool // -direct: the registry container's port 5000
	outside    bool // the client in the outside namespace, through the veth
	http1      bool
}

var allPaths = []path{
	{name: "nginx", desc: "nginx, TLS, HTTP/2 (as crane offers it), client in the host"},
	{name: "nginx-http1", desc: "nginx, TLS, HTTP/1.1 (as docker's classic registry client speaks it), client in the host", http1: true},
	{name: "direct", desc: "registry container, plain HTTP/1.1 to its port 5000, client in the host", direct: true},
	{name: "outside", desc: "nginx, TLS, HTTP/2, client outside the host (veth, ufw, docker's DNAT)", outside: true},
}

// BenchmarkStack is `make bench-stack` (issue #12): on a fresh host (Debian
// trixie under systemd-nspawn, docker installed, the images served by a
// mirror as Docker Hub would), it times `regctl init --self-signed` and a
// second init, then pushes and pulls a 1 GiB image of 8 random layers
// through nginx with TLS (over HTTP/2 and HTTP/1.1), and another such image
// straight to the registry container, with the client inside the host, and
// once more through nginx from outside the host (REGCTL_BENCH_PATHS picks
// among these), each REGCTL_BENCH_ROUNDS times. It reports the best
// throughputs, their ratio, the largest share of a pull spent on token
// requests and the CPU time each process spent, against the goals: a
// missed goal is reported, a failed push or pull fails the benchmark. It
// runs once whatever b.N is; use -benchtime 1x.
func BenchmarkStack(b *testing.B) {
	freshhost.RequireMachine(b)
	began := time.Now()
	a := freshhost.Cache(b)
	regctl := freshhost.StaticRegctl(b)
	client := buildClient(b)
	paths := pathsToRun(b)

	h := freshhost.Boot(b, freshhost.Options{
		Variant: freshhost.Full,
		// 12 GiB of blobs by default: on disk, not in the volatile
		// overlay's memory.
		Persistent: true,
		Binds: []freshhost.Bind{
			{Src: regctl, Dst: "/usr/local/bin/regctl", ReadOnly: true},
			{Src: client, Dst: clientBin, ReadOnly: true},
		},
		Hostnames: []string{registryName},
	})
	h.Mirror(b, a.Images.Nginx, a.Images.Registry) // compose pulls them as from Docker Hub
	// The name resolves to the host inside it too, as its DNS record would.
	h.Sh(b, "echo '"+h.IP.String()+" "+registryName+"' >>/etc/hosts")
	h.WriteRegctlYAML(b, registryName, "backend: sqlite", "")

	admin := "admin-" + testenv.RandomHex(8)
	initTook, initLog := runInit(b, h, admin, "first")
	init2Took, init2Log := runInit(b, h, admin, "second")

	// The plain command init's summary prints (init left a store pointer).
	pw := "pw-" + testenv.RandomHex(12)
	h.MustExec(b, freshhost.Cmd{
		Args:    []string{"regctl", "user", "add", "bench", "--password-stdin", "--label", "full-access=bench/*"},
		Stdin:   strings.NewReader(pw + "\n"),
		Timeout: 2 * time.Minute,
	})
	c := &benchClient{h: h, bin: client, pw: pw, direct: "http://" + registryAddr(b, h) + ":5000"}
	c.ca = filepath.Join(b.TempDir(), "ca.pem")
	if err := os.WriteFile(c.ca, h.ReadFile(b, caFile), 0o644); err != nil {
		b.Fatal(err)
	}
	// Users apply within the token server's reload interval.
	c.run(b, paths[0], ModeCheck, "bench/check:1", "-timeout", "90s")

	// Each round pushes a new image per path (the registry would skip
	// blobs it has) and pulls it back, the paths in a rotating order; the
	// machine is shared, so each path keeps its fastest push and pull.
	rounds := envInt(b, EnvRounds, 3)
	rep := report{paths: paths, rounds: rounds, pushes: map[string][]measured{}, pulls: map[string][]measured{}}
	for round := range rounds {
		for i := range paths {
			p := paths[(i+round)%len(paths)]
			repo := fmt.Sprintf("bench/%s:%d", p.name, round+1)
			push := c.run(b, p, ModePush, repo, "-seed", testenv.RandomHex(16))
			pull := c.run(b, p, ModePull, repo)
			if pull.Digest != push.Digest {
				b.Fatalf("%s: pulled %s, pushed %s", repo, pull.Digest, push.Digest)
			}
			rep.pushes[p.name] = append(rep.pushes[p.name], push)
			rep.pulls[p.name] = append(rep.pulls[p.name], pull)
		}
	}
	// The server's side of the direct path: nginx logged none of it (its
	// access log is the container's output).
	if hasPath(paths, "direct") {
		r := h.MustExec(b, freshhost.Cmd{Args: []string{"docker", "logs", containerID(b, h, "nginx")}, Quiet: true})
		if n := strings.Count(r.Output(), " /v2/bench/direct/"); n != 0 {
			b.Errorf("nginx logged %d requests for bench/direct, which went to the registry container", n)
		}
		if n := strings.Count(r.Output(), " /v2/bench/nginx/"); n == 0 && hasPath(paths, "nginx") {
			b.Errorf("nginx logged no request for bench/nginx: is its access log elsewhere?")
		}
	}

	rep.init, rep.init2, rep.total = initTook, init2Took, time.Since(began)
	rep.initSteps, rep.init2Steps = initSteps(initLog), initSteps(init2Log)
	rep.metrics(b)
	rep.print(os.Stdout)
}

// runInit runs `regctl init --self-signed` with the first admin's
// password on stdin and returns its wall time and progress (stderr); it
// fails unless init exits 0.
func runInit(b *testing.B, h *freshhost.Host, admin, which string) (time.Duration, string) {
	b.Helper()
	start := time.Now()
	r := h.Exec(b, freshhost.Cmd{
		Args:    []string{"regctl", "init", "--self-signed", "--password-stdin", "--config", "/etc/regctl/regctl.yaml"},
		Stdin:   strings.NewReader(admin + "\n"),
		Timeout: 15 * time.Minute,
	})
	took := time.Since(start)
	if r.Code != 0 {
		b.Fatalf("%s init: exit %d\n%s", which, r.Code, r.Output())
	}
	b.Logf("%s init: %s", which, took.Round(time.Millisecond))
	return took, r.Stderr
}

// containerID is the ID of the compose service's one container.
func containerID(b *testing.B, h *freshhost.Host, service string) string {
	b.Helper()
	id := strings.TrimSpace(h.MustRun(b, "", "docker", "ps", "-q", "--filter", "label=com.docker.compose.service="+service).Stdout)
	if id == "" || strings.Contains(id, "\n") {
		b.Fatalf("want one %s container, got %q", service, id)
	}
	return id
}

// registryAddr is the registry container's address on the compose network.
func registryAddr(b *testing.B, h *freshhost.Host) string {
	b.Helper()
	id := containerID(b, h, "registry")
	ip := strings.TrimSpace(h.MustRun(b, "", "docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", id).Stdout)
	if ip == "" || strings.Contains(ip, " ") {
		b.Fatalf("registry container %s: want one address, got %q", id, ip)
	}
	return ip
}

// buildClient builds cmd/benchclient, static, for the host.
func buildClient(b *testing.B) string {
	b.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "benchclient")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./internal/benchstack/cmd/benchclient")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build benchclient: %v\n%s", err, out)
	}
	return bin
}

func pathsToRun(b *testing.B) []path {
	b.Helper()
	names := os.Getenv(EnvPaths)
	if names == "" {
		names = "nginx,nginx-http1,direct,outside"
	}
	var out []path
	for _, n := range strings.Split(names, ",") {
		found := false
		for _, p := range allPaths {
			if p.name == strings.TrimSpace(n) {
				out = append(out, p)
				found = true
			}
		}
		if !found {
			b.Fatalf("%s: unknown path %q (known: nginx, direct, outside, nginx-http1)", EnvPaths, n)
		}
	}
	return out
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func hasPath(paths []path, name string) bool {
	for _, p := range paths {
		if p.name == name {
			return true
		}
	}
	return false
}

// benchClient runs the client in the host, or outside it.
type benchClient struct {
	h      *freshhost.Host
	bin    string // on the test machine (for outside)
	ca     string // the certificate, on the test machine (for outside)
	pw     string
	direct string
}

// measured is a client's Result and the CPU time the host's processes
// used meanwhile, by command name (nginx, registry, regctl...).
type measured struct {
	*Result
	server map[string]time.Duration
}

// cpu returns the server's CPU time of command comm, in seconds; "" sums
// the commands other than nginx and registry.
func (m measured) cpu(comm string) float64 {
	var d time.Duration
	for c, t := range m.server {
		if c == comm || (comm == "" && c != "nginx" && c != "registry") {
			d += t
		}
	}
	return d.Seconds()
}

// run runs the client on path, checks what it moved and measures the CPU
// time the host's processes spent meanwhile.
func (c *benchClient) run(b *testing.B, p path, mode, repo string, extra ...string) measured {
	b.Helper()
	before := hostCPU(b, c.h)
	res := c.exec(b, p, mode, repo, extra...)
	after := hostCPU(b, c.h)
	m := measured{Result: res, server: map[string]time.Duration{}}
	for pid, a := range after {
		if d := a.cpu - before[pid].cpu; d > 0 && (before[pid].comm == "" || before[pid].comm == a.comm) {
			m.server[a.comm] += d
		}
	}
	return m
}

// exec runs the client on path and checks what it moved.
func (c *benchClient) exec(b *testing.B, p path, mode, repo string, extra ...string) *Result {
	b.Helper()
	args := []string{"-mode", mode, "-ref", registryName + "/" + repo, "-user", "bench",
		"-layers", strconv.Itoa(imageLayers), "-layer-size", strconv.Itoa(layerSize)}
	if p.direct {
		args = append(args, "-direct", c.direct)
	}
	if p.http1 {
		args = append(args, "-http1")
	}
	args = append(args, extra...)
	cmd := freshhost.Cmd{Stdin: strings.NewReader(c.pw + "\n"), Timeout: 15 * time.Minute}
	var r testenv.Result
	if p.outside {
		cmd.Args = append([]string{c.bin, "-ca", c.ca}, args...)
		r = c.h.OutsideExec(b, cmd)
	} else {
		cmd.Args = append([]string{clientBin, "-ca", caFile}, args...)
		r = c.h.Exec(b, cmd)
	}
	if r.Code != 0 {
		b.Fatalf("%s %s via %s: exit %d\n%s", mode, repo, p.name, r.Code, r.Output())
	}
	var res Result
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		b.Fatalf("%s %s via %s: %v\n%s", mode, repo, p.name, err, r.Stdout)
	}
	if mode == ModeCheck {
		return &res
	}
	// Each layer: a tar header, the random file, the end-of-archive blocks.
	if want := int64(imageLayers) * (512 + layerSize + 1024); res.Bytes != want {
		b.Fatalf("%s %s via %s: moved %d bytes, want %d", mode, repo, p.name, res.Bytes, want)
	}
	if res.TokenRequests < 1 {
		b.Errorf("%s %s via %s: no token request", mode, repo, p.name)
	}
	wantHost := registryName
	if p.direct {
		wantHost = strings.TrimPrefix(c.direct, "http://")
	}
	if len(res.V2Hosts) != 1 || res.V2Hosts[wantHost] == 0 {
		b.Fatalf("%s %s via %s: /v2/ requests went to %v, want %s only", mode, repo, p.name, res.V2Hosts, wantHost)
	}
	return &res
}

// report is what the benchmark measured.
type report struct {
	init, init2           time.Duration
	initSteps, init2Steps string // init's steps and their times
	paths                 []path
	rounds                int
	pushes, pulls         map[string][]measured // by path, one per round
	total                 time.Duration
}

// best is the fastest of ms.
func best(ms []measured) measured {
	b := ms[0]
	for _, m := range ms[1:] {
		if m.MBps > b.MBps {
			b = m
		}
	}
	return b
}

// spread is the slowest and the fastest throughput of ms.
func spread(ms []measured) (lo, hi float64) {
	lo, hi = ms[0].MBps, ms[0].MBps
	for _, m := range ms[1:] {
		lo, hi = min(lo, m.MBps), max(hi, m.MBps)
	}
	return lo, hi
}

// ratio is the best throughput through nginx over the best direct one.
func ratio(m map[string][]measured, nginx string) (float64, bool) {
	n, ok1 := m[nginx]
	d, ok2 := m["direct"]
	if !ok1 || !ok2 {
		return 0, false
	}
	return best(n).MBps / best(d).MBps, true
}

// tokenShare is the largest share of a pull spent on tokens, and its path.
func (r report) tokenShare() (float64, string) {
	top, at := 0.0, ""
	for _, p := range r.paths {
		for _, m := range r.pulls[p.name] {
			if at == "" || m.TokenShare > top {
				top, at = m.TokenShare, p.name
			}
		}
	}
	return top, at
}

func (r report) metrics(b *testing.B) {
	b.ReportMetric(r.init.Seconds(), "init-s")
	b.ReportMetric(r.init2.Seconds(), "init2-s")
	for _, p := range r.paths {
		b.ReportMetric(best(r.pushes[p.name]).MBps, "push-MBps-"+p.name)
		b.ReportMetric(best(r.pulls[p.name]).MBps, "pull-MBps-"+p.name)
	}
	for _, n := range []string{"nginx", "nginx-http1"} {
		suffix := strings.TrimPrefix(n, "nginx")
		if v, ok := ratio(r.pushes, n); ok {
			b.ReportMetric(100*v, "ratio-push"+suffix+"-%")
		}
		if v, ok := ratio(r.pulls, n); ok {
			b.ReportMetric(100*v, "ratio-pull"+suffix+"-%")
		}
	}
	share, _ := r.tokenShare()
	b.ReportMetric(100*share, "token-share-%")
	b.ReportMetric(r.total.Seconds(), "bench-s")
}

func (r report) print(out *os.File) {
	w := bufio.NewWriter(out)
	defer w.Flush()
	rounds := "one round"
	if r.rounds > 1 {
		rounds = fmt.Sprintf("the best of %d rounds per path", r.rounds)
	}
	fmt.Fprintf(w, "\nbench-stack: images of %d layers of %d MiB of random bytes, 4 blobs at a time, pulls read, checked and thrown away; %s\n",
		imageLayers, layerSize>>20, rounds)
	for _, p := range r.paths {
		fmt.Fprintf(w, "  %-12s %s\n", p.name, p.desc)
	}
	fmt.Fprintf(w, "CPU seconds in the best round: the client's own, and the host's nginx, registry and other processes' (token server, docker); busy: all %d CPUs of the machine\n\n",
		best(r.pulls[r.paths[0].name]).CPUs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\top\tMB/s\tall rounds\ttime\ttoken requests\tbusy\tclient CPU\tnginx CPU\tregistry CPU\tother CPU\tprotocols\t")
	for _, p := range r.paths {
		for _, op := range []struct {
			name string
			ms   []measured
		}{{"push", r.pushes[p.name]}, {"pull", r.pulls[p.name]}} {
			m := best(op.ms)
			lo, hi := spread(op.ms)
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.0f-%.0f\t%.2f s\t%d, %.0f ms, %.2f%%\t%.0f%%\t%.2f s\t%.2f s\t%.2f s\t%.2f s\t%s\t\n",
				p.name, op.name, m.MBps, lo, hi, m.Seconds, m.TokenRequests, 1000*m.TokenSeconds, 100*m.TokenShare,
				100*m.MachineBusy, m.ClientCPU, m.cpu("nginx"), m.cpu("registry"), m.cpu(""), protocols(m.Result))
		}
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "goal\tmeasured\t\t")
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	fmt.Fprintf(tw, "init <= %s\t%.1f s\t%s\t\n", goalInit, r.init.Seconds(), verdict(r.init <= goalInit))
	fmt.Fprintf(tw, "second init <= %s\t%.2f s\t%s\t\n", goalInitAgain, r.init2.Seconds(), verdict(r.init2 <= goalInitAgain))
	for _, n := range []string{"nginx", "nginx-http1"} {
		for _, x := range []struct {
			what string
			m    map[string][]measured
		}{{"push", r.pushes}, {"pull", r.pulls}} {
			if v, ok := ratio(x.m, n); ok {
				fmt.Fprintf(tw, "%s %s/direct >= %.0f%%\t%.1f%%\t%s\t\n", x.what, n, 100*goalRatio, 100*v, verdict(v >= goalRatio))
			}
		}
	}
	share, at := r.tokenShare()
	fmt.Fprintf(tw, "token share of every pull < %.0f%%\t%.2f%% at most (%s)\t%s\t\n", 100*goalTokenShare, 100*share, at, verdict(share < goalTokenShare))
	tw.Flush()
	fmt.Fprintf(w, "\ninit's steps: %s\nsecond init's: %s\n", r.initSteps, r.init2Steps)
	fmt.Fprintf(w, "bench wall time %s (boot, init twice, %d pushes and pulls of 1 GiB)\n", r.total.Round(time.Second), r.rounds*len(r.paths))
}

func protocols(r *Result) string {
	var s []string
	for p := range r.Protocols {
		s = append(s, p)
	}
	slices.Sort(s)
	return strings.Join(s, "+")
}

// procCPU is a process's command name and CPU time so far.
type procCPU struct {
	comm string
	cpu  time.Duration
}

// hostCPU returns the CPU time of every process in the host's cgroup tree.
func hostCPU(b *testing.B, h *freshhost.Host) map[int]procCPU {
	b.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	out := map[int]procCPU{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil || !strings.Contains(string(cg), "/"+h.Name+"/") {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// PID (COMM) STATE PPID ... field 14 utime, 15 stime, in USER_HZ.
		open, end := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(string(stat[end+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = procCPU{comm: string(stat[open+1 : end]), cpu: time.Duration(ut+st) * time.Second / userHZ}
	}
	return out
}

// userHZ is the unit of /proc/PID/stat's times: 100 on every Linux
// architecture Go supports.
const userHZ = 100
