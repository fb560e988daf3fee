// Package bench is regctl's load benchmark (issue #8): it populates a
// store, starts `regctl serve` and a floor server (a handler that only
// signs a fixed-claims token with regctl's own minter, the physical
// reference), drives both with wrk at several concurrencies, and checks
// the performance targets as ratios measured in the same run.
// cmd/regctl-bench is its command line; scripts/bench.sh (`make bench`)
// builds and runs it.
package bench

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/mongo"
	"github.com/regctl/regctl/internal/store/sqlite"
	"github.com/regctl/regctl/internal/testenv"
)

// Workloads, in the order they run.
const (
	Warm    = "warm"    // a few users repeating their credentials, as CI runners do
	Cold    = "cold"    // every request a user not seen before: bcrypt each time
	Mixed   = "mixed"   // 90% warm, 10% cold
	Refresh = "refresh" // POST grant_type=refresh_token, docker login's identity token
)

// AllWorkloads lists the workloads.
var AllWorkloads = []string{Warm, Cold, Mixed, Refresh}

// Config is one run's settings.
type Config struct {
	Regctl   string // the regctl binary measured
	Self     string // the regctl-bench binary, run as "floor" for the floor server
	Wrk      string // the wrk binary
	Store    string // "sqlite", "ferretdb" or an empty MongoDB database's mongodb:// URL
	FerretDB string // the FerretDB binary, for Store "ferretdb"

	Users       int
	Rules       int
	BcryptCost  int
	WarmUsers   int
	Duration    time.Duration // of each cell
	Concurrency []int
	Workloads   []string
	Threads     int // wrk threads at most
	// Repeat is how many times the floor and regctl are measured in turns
	// under the warm and refresh workloads; the quietest run is kept.
	Repeat int
	// ReloadInterval is regctl serve's --reload-interval (0: its default).
	ReloadInterval time.Duration
	// ServeArgs are extra arguments for regctl serve (experiments such as
	// --log-level=warn; the targets are defined without any).
	ServeArgs []string

	Dir      string // work directory; "" for a new temporary one
	Keep     bool   // keep the work directory
	JSONPath string // where the report goes
	Log      io.Writer
}

// Limits of the settings, so that a run stays bounded in time.
const (
	MaxDuration = time.Minute
	MinDuration = time.Second
	MaxCost     = 14
)

// Validate checks the settings and fills in defaults for empty ones.
func (c *Config) Validate() error {
	if c.Log == nil {
		c.Log = io.Discard
	}
	if len(c.Workloads) == 0 {
		c.Workloads = AllWorkloads
	}
	if len(c.Concurrency) == 0 {
		c.Concurrency = []int{1, 16, 64}
	}
	if c.Threads <= 0 {
		c.Threads = runtime.NumCPU()
	}
	if c.Repeat <= 0 {
		c.Repeat = 1
	}
	for _, w := range c.Workloads {
		if !slices.Contains(AllWorkloads, w) {
			return fmt.Errorf("unknown workload %q (use %s)", w, strings.Join(AllWorkloads, ", "))
		}
	}
	for _, n := range c.Concurrency {
		if n < 1 || n > 1024 {
			return fmt.Errorf("concurrency %d out of range [1, 1024]", n)
		}
	}
	switch {
	case c.Regctl == "" || c.Self == "" || c.Wrk == "":
		return errors.New("the regctl, regctl-bench and wrk binaries are required")
	case c.Duration < MinDuration || c.Duration > MaxDuration:
		return fmt.Errorf("duration %s out of range [%s, %s]", c.Duration, MinDuration, MaxDuration)
	case c.BcryptCost < 4 || c.BcryptCost > MaxCost:
		return fmt.Errorf("bcrypt cost %d out of range [4, %d]", c.BcryptCost, MaxCost)
	case c.Rules < MinRules:
		return fmt.Errorf("rules %d: at least %d", c.Rules, MinRules)
	case c.Repeat > 5:
		return fmt.Errorf("repeat %d: at most 5", c.Repeat)
	case c.WarmUsers < 1:
		return errors.New("warm users must be at least 1")
	case c.Users < c.WarmUsers+c.coldBlocks()*minBlock:
		return fmt.Errorf("users %d: at least %d (%d warm users plus %d per cold or mixed cell)",
			c.Users, c.WarmUsers+c.coldBlocks()*minBlock, c.WarmUsers, minBlock)
	case c.Store == "ferretdb" && c.FerretDB == "":
		return errors.New("store ferretdb needs the FerretDB binary")
	case c.Store != "sqlite" && c.Store != "ferretdb" && !strings.HasPrefix(c.Store, "mongodb://"):
		return fmt.Errorf("store %q: use sqlite, ferretdb or a mongodb:// URL", c.Store)
	}
	return nil
}

// minBlock is the fewest distinct users a cold or mixed cell gets.
const minBlock = 100

// Caps on request-file sizes (wrk formats every line up front).
const (
	maxColdLines  = 50000
	maxMixedUsers = 5000
)

// coldBlocks is the number of cells that need users of their own.
func (c *Config) coldBlocks() int {
	n := 0
	for _, w := range c.Workloads {
		if w == Cold || w == Mixed {
			n += len(c.Concurrency)
		}
	}
	return n
}

// cells is the number of wrk runs.
func (c *Config) cells() int {
	n := c.Repeat // the floor with GET
	for _, w := range c.Workloads {
		switch w {
		case Warm:
			n += c.Repeat
		case Refresh:
			n += 2 * c.Repeat // and the floor with POST
		default:
			n++
		}
	}
	return n * len(c.Concurrency)
}

// Estimate is roughly how long the load phase takes.
func (c *Config) Estimate() time.Duration {
	return time.Duration(c.cells()) * (c.Duration + 2*time.Second)
}

// run is one benchmark run's state.
type run struct {
	cfg     Config
	dir     string
	keysDir string
	st      store.Store
	url     string // store URL for regctl serve
	procs   []*testenv.Proc
	regctl  *testenv.Proc
	floor   *testenv.Proc
	rAddr   string
	fAddr   string
	hashes  []string
	refresh []string // refresh tokens of the warm users
	report  *Report
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "bench: "+format+"\n", args...)
}

// Run performs the benchmark and writes the report to cfg.JSONPath. The
// processes it started are stopped and, unless cfg.Keep, its work
// directory removed, whatever happens.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, report: newReport(cfg)}
	if cfg.Dir == "" {
		if r.dir, err = os.MkdirTemp("", "regctl-bench-"); err != nil {
			return nil, err
		}
	} else {
		r.dir = cfg.Dir
		if err := os.MkdirAll(r.dir, 0o700); err != nil {
			return nil, err
		}
	}
	defer func() {
		for i := len(r.procs) - 1; i >= 0; i-- {
			r.procs[i].Stop()
		}
		if r.st != nil {
			_ = r.st.Close(context.WithoutCancel(ctx))
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted (%w)", context.Cause(ctx))
		}
		switch {
		case cfg.Keep || err != nil && ctx.Err() == nil:
			r.logf("work directory kept (logs, database, keys): %s", r.dir)
		case cfg.Dir == "":
			_ = os.RemoveAll(r.dir)
		}
	}()
	r.report.Started = time.Now().UTC()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"environment", r.environment},
		{"keys", r.keys},
		{"store", r.openStore},
		{"servers", r.startServers},
		{"bcrypt", r.measureBcrypt},
		{"rule evaluation", r.measureRuleEval},
		{"warm-up", r.warmUp},
		{"load", r.load},
		{"staleness", r.staleness},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if err := r.finish(); err != nil {
		return nil, err
	}
	return r.report, nil
}

func (r *run) environment(context.Context) error {
	env := &r.report.Environment
	env.Cores = runtime.NumCPU()
	env.GoVersion = runtime.Version()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		env.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				env.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command(r.cfg.Regctl, "--version").Output(); err == nil {
		env.Regctl = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command(r.cfg.Wrk, "--version").CombinedOutput(); err == nil || len(out) > 0 {
		env.Wrk, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
		env.Wrk, _, _ = strings.Cut(env.Wrk, " Copyright")
	}
	r.logf("%d cores (%s), %s, regctl %s; work directory %s", env.Cores, env.CPU, env.GoVersion, env.Regctl, r.dir)
	return nil
}

func (r *run) keys(ctx context.Context) error {
	r.keysDir = filepath.Join(r.dir, "keys")
	out, err := exec.CommandContext(ctx, r.cfg.Regctl, "keys", "generate", "--dir", r.keysDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("regctl keys generate: %w\n%s", err, out)
	}
	return nil
}

func (r *run) openStore(ctx context.Context) (err error) {
	start := time.Now()
	if r.hashes, err = Hashes(r.cfg.BcryptCost); err != nil {
		return err
	}
	switch r.cfg.Store {
	case "sqlite":
		path := filepath.Join(r.dir, "regctl.db")
		r.url = "sqlite://" + path
		r.st, err = sqlite.Open(ctx, path)
	case "ferretdb":
		if r.url, err = r.startFerretDB(ctx); err != nil {
			return err
		}
		r.st, err = mongo.Open(ctx, r.url)
	default:
		r.url = r.cfg.Store
		if r.st, err = mongo.Open(ctx, r.url); err == nil {
			err = checkEmpty(ctx, r.st)
		}
	}
	if err != nil {
		return err
	}
	r.report.Store = storeKind(r.cfg.Store)
	r.logf("populating the %s store: %d users (bcrypt cost %d, %d distinct passwords), %d rules",
		r.report.Store, r.cfg.Users, r.cfg.BcryptCost, Passwords, r.cfg.Rules)
	err = Populate(ctx, r.st, r.cfg.Users, r.cfg.Rules, r.hashes, func(n int) {
		if n%50000 == 0 {
			r.logf("  %d users", n)
		}
	})
	if err != nil {
		return err
	}
	r.report.PopulateSeconds = time.Since(start).Seconds()
	r.logf("populated in %.1fs", r.report.PopulateSeconds)
	return nil
}

func storeKind(s string) string {
	if strings.HasPrefix(s, "mongodb://") {
		return "mongodb"
	}
	return s
}

// checkEmpty refuses a MongoDB database that has rules or users: the
// benchmark replaces the rules and would mix its users with real ones.
func checkEmpty(ctx context.Context, st store.Store) error {
	rules, err := st.ListRules(ctx)
	if err != nil {
		return err
	}
	_, uerr := st.GetUser(ctx, UserName(0))
	if len(rules) > 0 || uerr == nil {
		return errors.New("the database is not empty: give the benchmark a database of its own, e.g. mongodb://127.0.0.1:27017/regctl_bench")
	}
	if !errors.Is(uerr, store.ErrNotFound) {
		return uerr
	}
	return nil
}

func (r *run) startFerretDB(ctx context.Context) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(r.dir, "ferretdb")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	p, err := testenv.Launch("ferretdb", filepath.Join(r.dir, "ferretdb.log"), syscall.SIGTERM, nil, r.cfg.FerretDB,
		"--handler=sqlite", "--sqlite-url=file:"+dir+"/", "--listen-addr="+addr,
		"--state-dir="+dir, "--debug-addr=-", "--telemetry=disable")
	if err != nil {
		return "", err
	}
	r.procs = append(r.procs, p)
	if err := waitReady(ctx, p, "listening on "+addr, 30*time.Second, testenv.DialCheck(addr)); err != nil {
		return "", err
	}
	return "mongodb://" + addr + "/regctl_bench", nil
}

func (r *run) startServers(ctx context.Context) (err error) {
	if r.rAddr, err = freeAddr(); err != nil {
		return err
	}
	args := []string{"serve", "--listen", r.rAddr, "--issuer", Issuer, "--service", Service,
		"--keys", r.keysDir, "--store", r.url, "--trusted-proxy", "127.0.0.1"}
	if r.cfg.ReloadInterval > 0 {
		args = append(args, "--reload-interval", r.cfg.ReloadInterval.String())
	}
	args = append(args, r.cfg.ServeArgs...)
	r.report.ServeArgs = append([]string{"regctl"}, args...)
	// Only the flags given count: no REGCTL_* setting of the caller's.
	env := []string{"REGCTL_CONFIG="}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "REGCTL_") {
			env = append(env, k+"=")
		}
	}
	start := time.Now()
	if r.regctl, err = testenv.Launch("regctl serve", filepath.Join(r.dir, "regctl-serve.log"), syscall.SIGTERM, env, r.cfg.Regctl, args...); err != nil {
		return err
	}
	r.procs = append(r.procs, r.regctl)
	if err := waitHTTP(ctx, r.regctl, "http://"+r.rAddr+"/readyz", 2*time.Minute); err != nil {
		return err
	}
	r.report.ReadySeconds = time.Since(start).Seconds()
	r.logf("regctl serve ready on %s in %.1fs (pid %d, log %s)", r.rAddr, r.report.ReadySeconds, r.regctl.PID(), r.regctl.LogPath)

	if r.fAddr, err = freeAddr(); err != nil {
		return err
	}
	if r.floor, err = testenv.Launch("floor", filepath.Join(r.dir, "floor.log"), syscall.SIGTERM, nil, r.cfg.Self,
		"floor", "-listen", r.fAddr, "-keys", r.keysDir); err != nil {
		return err
	}
	r.procs = append(r.procs, r.floor)
	if err := waitHTTP(ctx, r.floor, "http://"+r.fAddr+"/livez", 30*time.Second); err != nil {
		return err
	}
	r.logf("floor ready on %s (pid %d)", r.fAddr, r.floor.PID())
	return nil
}

func basicAuth(i int) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(UserName(i)+":"+Password(i)))
}

func tokenPath(i, req, rules int, extra url.Values) string {
	q := url.Values{"service": {Service}, "scope": {Scope(i, req, rules)}}
	for k, v := range extra {
		q[k] = v
	}
	return "/auth/token?" + q.Encode()
}

// warmRequests are the warm workload's requests: the warm users in turn,
// each cycling through its scopes.
func (r *run) warmRequests() []request {
	w := r.cfg.WarmUsers
	reqs := make([]request, 0, 4*w)
	for k := range 4 * w {
		i := k % w
		reqs = append(reqs, request{Method: "GET", Path: tokenPath(i, k/w, r.cfg.Rules, nil), Auth: basicAuth(i)})
	}
	return reqs
}

// coldRequests are one request for each user in [from, to), each from a
// client address of its own: parallel first logins from one address are
// limited to the burst of the per-address login limit, while this workload
// stands for many clients behind nginx.
func (r *run) coldRequests(from, to int) []request {
	reqs := make([]request, 0, to-from)
	for i := from; i < to; i++ {
		reqs = append(reqs, request{Method: "GET", Path: tokenPath(i, i, r.cfg.Rules, nil), Auth: basicAuth(i), Client: benchClient(i)})
	}
	return reqs
}

// benchClient is user i's client address, in the benchmarking range
// 198.18.0.0/15 (RFC 2544): only ever a header value, never contacted.
func benchClient(i int) string {
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)}).String()
}

// mixedRequests interleave the warm requests with one cold request in
// ten, for users in [from, to).
func (r *run) mixedRequests(from, to int) []request {
	warm := r.warmRequests()
	cold := r.coldRequests(from, to)
	reqs := make([]request, 0, 10*len(cold))
	for k := range 10 * len(cold) {
		if k%10 == 9 {
			reqs = append(reqs, cold[k/10])
		} else {
			reqs = append(reqs, warm[k%len(warm)])
		}
	}
	return reqs
}

// refreshRequests are the refresh-token grants of the warm users.
func (r *run) refreshRequests() []request {
	w := len(r.refresh)
	reqs := make([]request, 0, 4*w)
	for k := range 4 * w {
		i := k % w
		body := url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {r.refresh[i]},
			"service":       {Service},
			"scope":         {Scope(i, k/w, r.cfg.Rules)},
			"client_id":     {"regctl-bench"},
		}
		reqs = append(reqs, request{Method: "POST", Path: "/auth/token", Body: body.Encode()})
	}
	return reqs
}

func (r *run) load(ctx context.Context) error {
	cfg := &r.cfg
	blockSize := (cfg.Users - cfg.WarmUsers) / max(cfg.coldBlocks(), 1)
	nextBlock := cfg.WarmUsers
	block := func(limit int) (int, int) {
		from := nextBlock
		nextBlock += blockSize
		return from, from + min(blockSize, limit)
	}
	warm, refresh := r.warmRequests(), r.refreshRequests()
	r.logf("load: %d measurements of %s each, concurrency %v, about %s",
		cfg.cells(), cfg.Duration, cfg.Concurrency, cfg.Estimate().Round(time.Second))
	for _, c := range cfg.Concurrency {
		// The floor (GET) always: the cold and mixed ratios need it.
		if err := r.pair(ctx, Warm, c, warm, slices.Contains(cfg.Workloads, Warm)); err != nil {
			return err
		}
		for _, w := range cfg.Workloads {
			switch w {
			case Cold, Mixed:
				limit, requests := maxColdLines, r.coldRequests
				if w == Mixed {
					limit, requests = maxMixedUsers, r.mixedRequests
				}
				from, to := block(limit)
				cell, err := r.cell(ctx, "regctl", w, c, r.regctl, r.rAddr, requests(from, to), to-from)
				if err != nil {
					return err
				}
				r.report.Cells = append(r.report.Cells, cell)
			case Refresh:
				if err := r.pair(ctx, Refresh, c, refresh, true); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// pair measures the floor and (withRegctl) regctl under workload in
// turns, cfg.Repeat times, and reports for each the measurement during
// which other processes used the least CPU: on a shared machine, noise
// only ever makes a server look slower.
func (r *run) pair(ctx context.Context, workload string, conc int, reqs []request, withRegctl bool) error {
	var floor, regctl *Cell
	quieter := func(best **Cell, c Cell) {
		c.Runs = r.cfg.Repeat
		if *best == nil || c.OtherCPUCores < (*best).OtherCPUCores {
			*best = &c
		}
	}
	users := 0
	if workload == Warm {
		users = r.cfg.WarmUsers
	} else {
		users = len(r.refresh)
	}
	for range r.cfg.Repeat {
		c, err := r.cell(ctx, "floor", workload, conc, r.floor, r.fAddr, reqs, 0)
		if err != nil {
			return err
		}
		quieter(&floor, c)
		if !withRegctl {
			continue
		}
		if c, err = r.cell(ctx, "regctl", workload, conc, r.regctl, r.rAddr, reqs, users); err != nil {
			return err
		}
		quieter(&regctl, c)
	}
	r.report.Cells = append(r.report.Cells, *floor)
	if regctl != nil {
		r.report.Cells = append(r.report.Cells, *regctl)
	}
	return nil
}

// cell runs one wrk measurement against p; every measurement is also
// kept in the report's AllCells.
func (r *run) cell(ctx context.Context, server, workload string, conc int, p *testenv.Proc, addr string, reqs []request, users int) (Cell, error) {
	name := fmt.Sprintf("%s-%s-c%d", server, workload, conc)
	w := &wrkRun{
		Bin: r.cfg.Wrk, Dir: r.dir, Name: name, URL: "http://" + addr, Reqs: reqs,
		Concurrency: conc, Threads: r.cfg.Threads, Duration: r.cfg.Duration, Timeout: 60 * time.Second,
	}
	cpu0, err := cpuTime(p.PID())
	if err != nil {
		return Cell{}, fmt.Errorf("%s: %w", name, err)
	}
	busy0, _, _ := machineCPU()
	self0 := selfCPU()
	res, err := w.run(ctx)
	if err != nil {
		return Cell{}, err
	}
	busy1, _, _ := machineCPU()
	self1 := selfCPU()
	cpu1, err := cpuTime(p.PID())
	if err != nil {
		perr := p.Wait()
		return Cell{}, fmt.Errorf("%s: %s exited (%v); end of its log:\n%s", name, p.Name, perr, p.Log(4096)) //nolint:errorlint // perr is nil when the process exited 0, and %w would print %!w(<nil>)
	}
	mem, err := memory(p.PID())
	if err != nil {
		return Cell{}, err
	}
	c := newCell(server, workload, conc, res, cpu1-cpu0, mem.RSS, mem.Peak)
	if res.wall > 0 {
		c.WrkCPUCores = res.cpu.Seconds() / res.wall.Seconds()
		other := (busy1 - busy0) - (cpu1 - cpu0) - res.cpu - (self1 - self0)
		c.OtherCPUCores = max(other.Seconds()/res.wall.Seconds(), 0)
	}
	c.DistinctUsers = users
	if users > 0 && (workload == Cold || workload == Mixed) {
		coldReqs := c.Requests
		if workload == Mixed {
			coldReqs /= 10
		}
		c.ColdRepeated = coldReqs > int64(users)
	}
	r.report.AllCells = append(r.report.AllCells, c)
	r.logf("%-22s %8.1f tokens/s  p50 %7.2fms  p99 %7.2fms  cpu/req %6.0fµs  rss %5.1f MiB  other processes %.2f cores%s",
		name, c.TokensPerSecond, c.P50MS, c.P99MS, c.CPUPerRequestUS, mib(c.RSSBytes), c.OtherCPUCores, c.problem())
	// Let queued work (bcrypt of abandoned cold requests) drain.
	if err := sleep(ctx, time.Second); err != nil {
		return Cell{}, err
	}
	return c, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (r *run) finish() error {
	if m, err := memory(r.regctl.PID()); err == nil {
		r.report.RegctlPeakRSSBytes = m.Peak
		r.report.RegctlRSSAnonBytes, r.report.RegctlRSSFileBytes = m.Anon, m.File
	}
	if m, err := memory(r.floor.PID()); err == nil {
		r.report.FloorPeakRSSBytes = m.Peak
	}
	r.report.Finished = time.Now().UTC()
	r.report.evaluate()
	return r.report.writeJSON(r.cfg.JSONPath)
}

// freeAddr returns a 127.0.0.1 address with a port nothing listens on.
func freeAddr() (string, error) {
	a, err := testenv.FreeAddr()
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

// waitHTTP polls url until it answers 200, p exits, ctx ends or timeout
// passes.
func waitHTTP(ctx context.Context, p *testenv.Proc, url string, timeout time.Duration) error {
	return waitReady(ctx, p, "at "+url, timeout, testenv.HTTPCheck(url, http.StatusOK))
}

// waitReady polls check until it passes; what says what it waits for.
func waitReady(ctx context.Context, p *testenv.Proc, what string, timeout time.Duration, check func() error) error {
	if err := p.Ready(ctx, timeout, check); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s not ready (%s): %w; end of its log:\n%s", p.Name, what, err, p.Log(4096))
	}
	return nil
}
