package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is a run's outcome, written as JSON.
type Report struct {
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	Environment struct {
		Cores     int    `json:"cores"`
		CPU       string `json:"cpu"`
		Kernel    string `json:"kernel"`
		GoVersion string `json:"go"`
		Regctl    string `json:"regctl"`
		Wrk       string `json:"wrk"`
	} `json:"environment"`
	Settings struct {
		Store          string   `json:"store"`
		Users          int      `json:"users"`
		Rules          int      `json:"rules"`
		BcryptCost     int      `json:"bcrypt_cost"`
		WarmUsers      int      `json:"warm_users"`
		DurationS      float64  `json:"duration_s"`
		Concurrency    []int    `json:"concurrency"`
		Workloads      []string `json:"workloads"`
		WrkThreads     int      `json:"wrk_threads"`
		Repeat         int      `json:"repeat"`
		ReloadInterval string   `json:"reload_interval,omitempty"`
	} `json:"settings"`
	Store           string   `json:"store"`
	ServeArgs       []string `json:"serve_args"`
	PopulateSeconds float64  `json:"populate_s"`
	ReadySeconds    float64  `json:"ready_s"` // regctl serve start to /readyz
	Bcrypt          struct {
		Cost           int     `json:"cost"`
		Samples        int     `json:"samples"`
		MedianMS       float64 `json:"median_ms"`
		CPUMS          float64 `json:"cpu_ms"`      // mean CPU time of one comparison
		LimitPerSecond float64 `json:"limit_per_s"` // cores / median
	} `json:"bcrypt"`
	RuleEval RuleEval `json:"rule_eval"`
	// Cells are the measurements reported: for the warm and refresh
	// workloads, the quietest of Settings.Repeat; AllCells has every one.
	Cells     []Cell `json:"cells"`
	AllCells  []Cell `json:"all_cells"`
	Staleness struct {
		ReloadIntervalS float64 `json:"reload_interval_s"`
		BoundS          float64 `json:"bound_s"`
		RuleChangeS     float64 `json:"rule_change_s"` // -1: not applied in time
		UserChangeS     float64 `json:"user_change_s"`
	} `json:"staleness"`
	// NoiseCores is the mean CPU other processes used during the cells:
	// above NoiseWarning the machine was not quiet enough to trust the
	// figures.
	NoiseCores         float64 `json:"noise_cores"`
	RegctlPeakRSSBytes int64   `json:"regctl_peak_rss_bytes"` // VmHWM at the end of the run
	// RegctlPeakRSSLoadBytes is VmHWM after the load, before the
	// staleness checks change a rule (a reload holds two policies).
	RegctlPeakRSSLoadBytes int64 `json:"regctl_peak_rss_load_bytes"`
	// RegctlRSSAnonBytes and RegctlRSSFileBytes split the RSS at the end
	// of the run: the Go heap and other private memory, and the mapped
	// binary.
	RegctlRSSAnonBytes int64    `json:"regctl_rss_anon_bytes"`
	RegctlRSSFileBytes int64    `json:"regctl_rss_file_bytes"`
	FloorPeakRSSBytes  int64    `json:"floor_peak_rss_bytes"`
	Targets            []Target `json:"targets"`
	Pass               bool     `json:"pass"`
}

func newReport(cfg Config) *Report {
	r := &Report{}
	s := &r.Settings
	s.Store, s.Users, s.Rules, s.BcryptCost, s.WarmUsers = storeKind(cfg.Store), cfg.Users, cfg.Rules, cfg.BcryptCost, cfg.WarmUsers
	s.DurationS, s.Concurrency, s.Workloads, s.WrkThreads = cfg.Duration.Seconds(), cfg.Concurrency, cfg.Workloads, cfg.Threads
	s.Repeat = cfg.Repeat
	if cfg.ReloadInterval > 0 {
		s.ReloadInterval = cfg.ReloadInterval.String()
	}
	return r
}

// Cell is one wrk measurement: a workload against a server at a
// concurrency.
type Cell struct {
	Server          string  `json:"server"` // regctl or floor
	Workload        string  `json:"workload"`
	Concurrency     int     `json:"concurrency"`
	DurationS       float64 `json:"duration_s"`
	Requests        int64   `json:"requests"`
	Errors          int64   `json:"errors"` // non-2xx answers, socket errors and timeouts
	TokensPerSecond float64 `json:"tokens_per_s"`
	P50MS           float64 `json:"p50_ms"`
	P90MS           float64 `json:"p90_ms"`
	P99MS           float64 `json:"p99_ms"`
	MaxMS           float64 `json:"max_ms"`
	CPUPerRequestUS float64 `json:"cpu_per_request_us"` // server user+system CPU / requests
	CPUCores        float64 `json:"cpu_cores"`          // server CPU / wall time
	WrkCPUCores     float64 `json:"wrk_cpu_cores"`      // the load generator's
	// OtherCPUCores is the CPU that processes other than the server, wrk
	// and the benchmark used during the cell: noise from a shared machine.
	OtherCPUCores float64 `json:"other_cpu_cores"`
	RSSBytes      int64   `json:"rss_bytes"`      // after the cell
	PeakRSSBytes  int64   `json:"peak_rss_bytes"` // VmHWM after the cell
	DistinctUsers int     `json:"distinct_users,omitempty"`
	// ColdRepeated: more cold requests than cold users, so some were
	// answered from the credential cache (raise -users or the cost).
	ColdRepeated bool    `json:"cold_repeated,omitempty"`
	VsFloor      float64 `json:"vs_floor,omitempty"` // tokens/s over the floor's at this concurrency
	// Runs is how many measurements this one was chosen from (the
	// quietest).
	Runs int `json:"runs,omitempty"`
}

func newCell(server, workload string, conc int, res *wrkResult, cpu time.Duration, rss, peak int64) Cell {
	e := res.Errors
	errs := e.Connect + e.Read + e.Write + e.Status + e.Timeout
	ok := max(res.Requests-e.Status, 0)
	secs := float64(res.DurationUS) / 1e6
	c := Cell{
		Server: server, Workload: workload, Concurrency: conc,
		DurationS: secs, Requests: res.Requests, Errors: errs,
		P50MS: float64(res.Latency.P50) / 1000, P90MS: float64(res.Latency.P90) / 1000,
		P99MS: float64(res.Latency.P99) / 1000, MaxMS: float64(res.Latency.Max) / 1000,
		RSSBytes: rss, PeakRSSBytes: peak,
	}
	if secs > 0 {
		c.TokensPerSecond = float64(ok) / secs
		c.CPUCores = cpu.Seconds() / secs
	}
	if res.Requests > 0 {
		c.CPUPerRequestUS = float64(cpu.Microseconds()) / float64(res.Requests)
	}
	return c
}

func (c *Cell) problem() string {
	var p []string
	if c.Errors > 0 {
		p = append(p, fmt.Sprintf("%d errors", c.Errors))
	}
	if c.ColdRepeated {
		p = append(p, "cold users repeated")
	}
	if len(p) == 0 {
		return ""
	}
	return "  (" + strings.Join(p, ", ") + ")"
}

// Target is one performance target's verdict.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Pass bool   `json:"pass"`
}

// Targets (issue #8), on the machine the run is on, as ratios within the
// run.
const (
	WarmThroughputRatio = 0.5 // warm tokens/s over the floor's
	WarmP99Ratio        = 2.0 // warm p99 over the floor's, at most
	ColdBcryptRatio     = 0.9 // cold tokens/s over what bcrypt allows
	RuleEvalP50         = 50 * time.Microsecond
	PeakRSS             = 64 << 20

	NoiseWarning = 0.25 // cores used by other processes
)

func (r *Report) cell(server, workload string, conc int) *Cell {
	for i := range r.Cells {
		c := &r.Cells[i]
		if c.Server == server && c.Workload == workload && c.Concurrency == conc {
			return c
		}
	}
	return nil
}

// evaluate fills in the floor ratios and the targets.
func (r *Report) evaluate() {
	for i := range r.Cells {
		c := &r.Cells[i]
		if c.Server != "regctl" {
			continue
		}
		floorWorkload := Warm
		if c.Workload == Refresh {
			floorWorkload = Refresh
		}
		if f := r.cell("floor", floorWorkload, c.Concurrency); f != nil && f.TokensPerSecond > 0 {
			c.VsFloor = c.TokensPerSecond / f.TokensPerSecond
		}
	}
	if len(r.Cells) > 0 {
		var sum float64
		for _, c := range r.Cells {
			sum += c.OtherCPUCores
		}
		r.NoiseCores = sum / float64(len(r.Cells))
	}
	add := func(name, want, got string, pass bool) {
		r.Targets = append(r.Targets, Target{Name: name, Want: want, Got: got, Pass: pass})
	}
	for _, conc := range r.Settings.Concurrency {
		w, f := r.cell("regctl", Warm, conc), r.cell("floor", Warm, conc)
		if w == nil || f == nil {
			continue
		}
		ratio := w.TokensPerSecond / max(f.TokensPerSecond, 1e-9)
		add(fmt.Sprintf("warm throughput c=%d", conc), fmt.Sprintf(">= %.0f%% of floor", 100*WarmThroughputRatio),
			fmt.Sprintf("%.0f%% (%.0f vs %.0f tokens/s)", 100*ratio, w.TokensPerSecond, f.TokensPerSecond),
			ratio >= WarmThroughputRatio && w.Errors == 0)
		pr := w.P99MS / max(f.P99MS, 1e-9)
		add(fmt.Sprintf("warm p99 c=%d", conc), fmt.Sprintf("<= %.0fx floor p99", WarmP99Ratio),
			fmt.Sprintf("%.2fx (%.2f vs %.2f ms)", pr, w.P99MS, f.P99MS), pr <= WarmP99Ratio)
	}
	for _, conc := range r.Settings.Concurrency {
		c := r.cell("regctl", Cold, conc)
		if c == nil || r.Bcrypt.MedianMS <= 0 {
			continue
		}
		// What bcrypt alone allows: min(c, cores) / bcrypt time, measured
		// at the start of the run on the idle machine. Other processes
		// on a shared machine take cores away from the server: the noise
		// column says how many.
		limit := float64(min(conc, r.Environment.Cores)) / (r.Bcrypt.MedianMS / 1000)
		ratio := c.TokensPerSecond / limit
		add(fmt.Sprintf("cold throughput c=%d", conc),
			fmt.Sprintf(">= %.0f%% of min(c, cores)/bcrypt", 100*ColdBcryptRatio),
			fmt.Sprintf("%.0f%% (%.1f vs %.1f tokens/s; noise %.2f cores)", 100*ratio, c.TokensPerSecond, limit, c.OtherCPUCores),
			ratio >= ColdBcryptRatio && c.Errors == 0 && !c.ColdRepeated)
		// The same question asked of CPU time, which other processes do
		// not inflate: the share of the server's CPU that went to bcrypt.
		if r.Bcrypt.CPUMS > 0 && c.CPUPerRequestUS > 0 {
			eff := r.Bcrypt.CPUMS * 1000 / c.CPUPerRequestUS
			add(fmt.Sprintf("cold CPU spent in bcrypt c=%d", conc), fmt.Sprintf(">= %.0f%%", 100*ColdBcryptRatio),
				fmt.Sprintf("%.0f%% (%.1f ms of %.1f ms per token)", 100*eff, r.Bcrypt.CPUMS, c.CPUPerRequestUS/1000),
				eff >= ColdBcryptRatio && c.Errors == 0)
		}
	}
	if r.RuleEval.Samples > 0 {
		add(fmt.Sprintf("rule evaluation p50, %d rules", r.RuleEval.Rules), fmt.Sprintf("< %s", RuleEvalP50),
			fmt.Sprintf("%.1fµs (p99 %.1fµs)", float64(r.RuleEval.P50NS)/1000, float64(r.RuleEval.P99NS)/1000),
			time.Duration(r.RuleEval.P50NS) < RuleEvalP50)
	}
	if r.RegctlPeakRSSBytes > 0 {
		add(fmt.Sprintf("peak RSS, %d users, %d rules", r.Settings.Users, r.Settings.Rules), fmt.Sprintf("< %d MiB", PeakRSS>>20),
			fmt.Sprintf("%.1f MiB (%.1f during the load; floor %.1f)", mib(r.RegctlPeakRSSBytes), mib(r.RegctlPeakRSSLoadBytes), mib(r.FloorPeakRSSBytes)),
			r.RegctlPeakRSSBytes < PeakRSS)
	}
	if s := r.Staleness; s.BoundS > 0 {
		for _, x := range []struct {
			name string
			v    float64
		}{{"staleness: rule change", s.RuleChangeS}, {"staleness: user disabled", s.UserChangeS}} {
			got := fmt.Sprintf("%.2fs", x.v)
			if x.v < 0 {
				got = "not applied"
			}
			add(x.name, fmt.Sprintf("<= %.1fs (reload interval + %s)", s.BoundS, stalenessSlack), got, x.v >= 0 && x.v <= s.BoundS)
		}
	}
	r.Pass = true
	for _, t := range r.Targets {
		r.Pass = r.Pass && t.Pass
	}
	for _, c := range r.Cells {
		r.Pass = r.Pass && c.Errors == 0
	}
}

func (r *Report) writeJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// WriteTable prints the results and the targets.
func (r *Report) WriteTable(w io.Writer) error {
	e, s := r.Environment, r.Settings
	fmt.Fprintf(w, "regctl %s on %d cores (%s), %s store, %d users, %d rules, bcrypt cost %d (%.1f ms), %gs per cell, wrk %d threads\n\n",
		e.Regctl, e.Cores, e.CPU, r.Store, s.Users, s.Rules, s.BcryptCost, r.Bcrypt.MedianMS, s.DurationS, s.WrkThreads)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tserver\tconc\ttokens/s\tp50 ms\tp90 ms\tp99 ms\tcpu/req µs\tcpu cores\trss MiB\tvs floor\terrors\tnoise\t")
	for _, c := range r.Cells {
		vs := ""
		if c.VsFloor > 0 {
			vs = fmt.Sprintf("%.2f", c.VsFloor)
		}
		tps := fmt.Sprintf("%.0f", c.TokensPerSecond)
		if c.TokensPerSecond < 100 {
			tps = fmt.Sprintf("%.1f", c.TokensPerSecond)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.2f\t%.2f\t%.2f\t%.0f\t%.2f\t%.1f\t%s\t%d\t%.2f\t\n",
			c.Workload, c.Server, c.Concurrency, tps, c.P50MS, c.P90MS, c.P99MS,
			c.CPUPerRequestUS, c.CPUCores, mib(c.RSSBytes), vs, c.Errors, c.OtherCPUCores)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "(cpu cores: the server's CPU over wall time; noise: cores other processes used meanwhile)\n")
	fmt.Fprintf(w, "\nrule evaluation (%d rules, %d samples): p50 %.1fµs, p90 %.1fµs, p99 %.1fµs; compile %.0f ms\n",
		r.RuleEval.Rules, r.RuleEval.Samples, float64(r.RuleEval.P50NS)/1000, float64(r.RuleEval.P90NS)/1000,
		float64(r.RuleEval.P99NS)/1000, r.RuleEval.CompileMS)
	fmt.Fprintf(w, "peak RSS: regctl %.1f MiB (%.1f MiB during the load; at the end %.1f MiB private + %.1f MiB mapped binary), floor %.1f MiB\n\n",
		mib(r.RegctlPeakRSSBytes), mib(r.RegctlPeakRSSLoadBytes), mib(r.RegctlRSSAnonBytes), mib(r.RegctlRSSFileBytes), mib(r.FloorPeakRSSBytes))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\twant\tgot\tverdict")
	for _, t := range r.Targets {
		v := "PASS"
		if !t.Pass {
			v = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Want, t.Got, v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.NoiseCores > NoiseWarning {
		fmt.Fprintf(w, "\nWARNING: other processes used %.2f cores on average during the measurements (the noise column):\nthe machine was not quiet, so the figures and verdicts are not reliable.\n", r.NoiseCores)
	}
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	_, err := fmt.Fprintf(w, "\noverall: %s\n", verdict)
	return err
}
