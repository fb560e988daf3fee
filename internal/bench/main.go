package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes of regctl-bench.
const (
	ExitOK     = 0
	ExitError  = 1
	ExitUsage  = 2
	ExitFailed = 3 // the run completed but a target failed
)

const usage = `usage:
  regctl-bench [run] [flags]   run the load benchmark (see -h)
  regctl-bench floor -listen ADDR -keys DIR
                               serve the floor (the benchmark starts it)
`

// Main runs regctl-bench with args and returns its exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && args[0] == "floor" {
		return floorMain(ctx, args[1:], os.Stderr)
	}
	if len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	return runMain(ctx, args, os.Stdout, os.Stderr)
}

func floorMain(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("regctl-bench floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	keysDir := fs.String("keys", "", "directory made by `regctl keys generate`")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *keysDir == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	if err := ServeFloor(ctx, *listen, *keysDir); err != nil {
		fmt.Fprintf(stderr, "floor: %v\n", err)
		return ExitError
	}
	return ExitOK
}

// defaultFerretDB is where scripts/test-deps.sh caches FerretDB.
func defaultFerretDB() string {
	cache := os.Getenv("REGCTL_TEST_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "regctl-test")
	}
	return filepath.Join(cache, "ferretdb-v1.24.2", "ferretdb")
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("regctl-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage+"\nflags:\n")
		fs.PrintDefaults()
	}
	cfg := Config{Log: stderr}
	var conc, workloads string
	fs.StringVar(&cfg.Regctl, "regctl", "bin/regctl", "the regctl binary to measure")
	fs.StringVar(&cfg.Wrk, "wrk", "wrk", "the wrk binary (Debian: apt-get install wrk)")
	fs.StringVar(&cfg.Store, "store", "sqlite", "store: sqlite (a new database file), ferretdb (a new FerretDB on SQLite, see -ferretdb) or the mongodb:// URL of an empty database")
	fs.StringVar(&cfg.FerretDB, "ferretdb", defaultFerretDB(), "the FerretDB binary, for -store ferretdb (scripts/test-deps.sh builds it)")
	fs.IntVar(&cfg.Users, "users", 100000, "users in the store")
	fs.IntVar(&cfg.Rules, "rules", 10000, fmt.Sprintf("rules in the store (at least %d)", MinRules))
	fs.IntVar(&cfg.BcryptCost, "cost", 10, fmt.Sprintf("bcrypt cost of the users' password hashes (4-%d)", MaxCost))
	fs.IntVar(&cfg.WarmUsers, "warm-users", 100, "distinct users of the warm and refresh workloads")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, fmt.Sprintf("duration of each measurement (%s-%s)", MinDuration, MaxDuration))
	fs.StringVar(&conc, "concurrency", "1,16,64", "concurrent connections, comma-separated")
	fs.StringVar(&workloads, "workloads", strings.Join(AllWorkloads, ","), "workloads, comma-separated")
	fs.IntVar(&cfg.Repeat, "repeat", 2, "measure the floor and regctl in turns this many times under the warm and refresh workloads, keeping the quietest (1-5)")
	fs.IntVar(&cfg.Threads, "threads", runtime.NumCPU(), "wrk threads at most")
	fs.DurationVar(&cfg.ReloadInterval, "reload-interval", 0, "regctl serve --reload-interval (0: its default)")
	fs.Func("serve-arg", "extra argument for regctl serve, e.g. --log-level=warn (repeatable)", func(v string) error {
		cfg.ServeArgs = append(cfg.ServeArgs, v)
		return nil
	})
	fs.StringVar(&cfg.Dir, "dir", "", "work directory (default: a new temporary directory, removed at the end)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the work directory (logs, database, keys)")
	fs.StringVar(&cfg.JSONPath, "json", "", "report file (default bin/bench/bench-TIME.json)")
	timeout := fs.Duration("timeout", 30*time.Minute, "stop the whole run after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return ExitUsage
	}
	for _, s := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintf(stderr, "regctl-bench: -concurrency %q: %v\n", conc, err)
			return ExitUsage
		}
		cfg.Concurrency = append(cfg.Concurrency, n)
	}
	for _, w := range strings.Split(workloads, ",") {
		cfg.Workloads = append(cfg.Workloads, strings.TrimSpace(w))
	}
	var err error
	if cfg.Self, err = os.Executable(); err != nil {
		fmt.Fprintf(stderr, "regctl-bench: %v\n", err)
		return ExitError
	}
	if cfg.Wrk, err = exec.LookPath(cfg.Wrk); err != nil {
		fmt.Fprintf(stderr, "regctl-bench: %v (Debian: apt-get install wrk)\n", err)
		return ExitError
	}
	if cfg.Regctl, err = filepath.Abs(cfg.Regctl); err != nil {
		fmt.Fprintf(stderr, "regctl-bench: %v\n", err)
		return ExitError
	}
	if cfg.JSONPath == "" {
		cfg.JSONPath = filepath.Join("bin", "bench", "bench-"+time.Now().UTC().Format("20060102-150405")+".json")
	}
	if cfg.Store != "ferretdb" {
		cfg.FerretDB = ""
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "regctl-bench: %v\n", err)
		return ExitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "regctl-bench: %v\n", err)
		return ExitError
	}
	fmt.Fprintln(stdout)
	if err := rep.WriteTable(stdout); err != nil {
		return ExitError
	}
	fmt.Fprintf(stdout, "report: %s\n", cfg.JSONPath)
	if !rep.Pass {
		return ExitFailed
	}
	return ExitOK
}
