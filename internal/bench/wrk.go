package bench

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

//go:embed load.lua
var loadScript []byte

// request is one line of a wrk request file.
type request struct {
	Method string
	Path   string
	Auth   string // the Authorization header value, "" for none
	Body   string // a form body, "" for none
	// Client is the X-Forwarded-For address, "" for none: the client
	// nginx would report, for requests that stand for many clients.
	Client string
}

func (r request) line() string {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	return r.Method + "\t" + r.Path + "\t" + dash(r.Auth) + "\t" + dash(r.Body) + "\t" + dash(r.Client) + "\n"
}

// writeRequests writes reqs as a request file for load.lua.
func writeRequests(path string, reqs []request) error {
	var b strings.Builder
	for _, r := range reqs {
		for _, s := range []string{r.Method, r.Path, r.Auth, r.Body, r.Client} {
			if strings.ContainsAny(s, "\t\n") {
				return fmt.Errorf("request field %q contains a tab or newline", s)
			}
		}
		b.WriteString(r.line())
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// wrkResult is what load.lua's done() writes.
type wrkResult struct {
	DurationUS int64 `json:"duration_us"`
	Requests   int64 `json:"requests"`
	Bytes      int64 `json:"bytes"`
	Errors     struct {
		Connect int64 `json:"connect"`
		Read    int64 `json:"read"`
		Write   int64 `json:"write"`
		Status  int64 `json:"status"` // responses other than 2xx and 3xx
		Timeout int64 `json:"timeout"`
	} `json:"errors"`
	Latency struct {
		P50  int64   `json:"p50"`
		P90  int64   `json:"p90"`
		P99  int64   `json:"p99"`
		Max  int64   `json:"max"`
		Mean float64 `json:"mean"`
	} `json:"latency_us"`

	cpu  time.Duration // wrk's own CPU time
	wall time.Duration // from wrk's start to its exit
}

// wrkRun is one wrk invocation.
type wrkRun struct {
	Bin         string // wrk binary
	Dir         string // where the script, request file and result go
	Name        string // file name prefix
	URL         string // base URL, e.g. http://127.0.0.1:5001
	Reqs        []request
	Concurrency int
	Threads     int
	Duration    time.Duration
	Timeout     time.Duration // per request
}

func (w *wrkRun) run(ctx context.Context) (*wrkResult, error) {
	threads := max(min(w.Threads, w.Concurrency), 1)
	if len(w.Reqs) < threads {
		return nil, fmt.Errorf("%s: %d request lines for %d threads", w.Name, len(w.Reqs), threads)
	}
	script := filepath.Join(w.Dir, "load.lua")
	if err := os.WriteFile(script, loadScript, 0o600); err != nil {
		return nil, err
	}
	reqFile := filepath.Join(w.Dir, w.Name+".requests")
	resFile := filepath.Join(w.Dir, w.Name+".result.json")
	if err := writeRequests(reqFile, w.Reqs); err != nil {
		return nil, err
	}
	_ = os.Remove(resFile)
	args := []string{
		"-t", strconv.Itoa(threads),
		"-c", strconv.Itoa(w.Concurrency),
		"-d", fmt.Sprintf("%ds", max(int(w.Duration/time.Second), 1)),
		"--timeout", fmt.Sprintf("%ds", max(int(w.Timeout/time.Second), 1)),
		"-s", script,
		w.URL + w.Reqs[0].Path,
	}
	// Bound wrk itself: its duration plus time to read the request file
	// and to let the last requests finish.
	ctx, cancel := context.WithTimeout(ctx, w.Duration+w.Timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.Bin, args...)
	cmd.Env = append(os.Environ(),
		"BENCH_REQUESTS="+reqFile,
		"BENCH_RESULT="+resFile,
		"BENCH_THREADS="+strconv.Itoa(threads))
	testenv.DieWithParent(cmd)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	data, err := os.ReadFile(resFile)
	if err != nil {
		return nil, fmt.Errorf("wrk wrote no result (%w); its output:\n%s", err, out)
	}
	var res wrkResult
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("wrk result %s: %w", resFile, err)
	}
	res.wall = wall
	res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	_ = os.Remove(reqFile)
	return &res, nil
}
