package bench

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/token"
)

func TestParseProc(t *testing.T) {
	stat := "4242 (regctl (serve) x) S 1 4242 4242 0 -1 4194560 9000 0 0 0 1234 567 0 0 20 0 12 0 100 0 0"
	cpu, err := parseStatCPU([]byte(stat))
	if err != nil || cpu != (1234+567)*10*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v", cpu, err)
	}
	if _, err := parseStatCPU([]byte("4242 (x")); err == nil {
		t.Error("malformed stat accepted")
	}
	status := "Name:\tregctl\nVmPeak:\t  900000 kB\nVmHWM:\t   65536 kB\nVmRSS:\t   32768 kB\nRssAnon:\t   20480 kB\nRssFile:\t   12288 kB\nThreads:\t8\n"
	m, err := parseStatusMemory([]byte(status))
	if err != nil || m != (memInfo{RSS: 32 << 20, Peak: 64 << 20, Anon: 20 << 20, File: 12 << 20}) {
		t.Errorf("parseStatusMemory = %+v, %v", m, err)
	}
	if _, err := parseStatusMemory([]byte("Name:\tx\n")); err == nil {
		t.Error("status without VmRSS accepted")
	}
	busy, total, err := parseMachineCPU([]byte("cpu  100 5 50 800 20 3 2 0 7 0\ncpu0 1 2 3\n"))
	if err != nil || busy != 160*10*time.Millisecond || total != 980*10*time.Millisecond {
		t.Errorf("parseMachineCPU = %v, %v, %v", busy, total, err)
	}
}

// The generated data decides as Scope documents, so that the benchmark
// measures real grants and misses, not errors.
func TestDataDecides(t *testing.T) {
	const rules = 1000
	p, err := acl.Compile(Rules(rules))
	if err != nil {
		t.Fatal(err)
	}
	if p.Len() != rules {
		t.Fatalf("%d rules, want %d", p.Len(), rules)
	}
	now := time.Now()
	hashes := []string{"x"}
	decide := func(i, req int) []string {
		t.Helper()
		sc, err := acl.ParseScope(Scope(i, req, rules))
		if err != nil {
			t.Fatal(err)
		}
		return p.Authorize(Subject(User(i, hashes, now)), Service, []acl.Scope{sc}, now)[0].Actions
	}
	tests := []struct {
		name   string
		i, req int
		want   []string
	}{
		{"personal rule", 0, 0, []string{"pull", "push"}},
		{"catch-all namespace", 5000, 0, []string{"pull", "push"}},
		{"team project", 4, 1, []string{"pull", "push"}},
		{"no team project", 1, 1, []string{}},
		{"regex rule", 7, 2, []string{"pull"}},
		{"miss", 0, 3, []string{}},
	}
	for _, tt := range tests {
		if got := decide(tt.i, tt.req); !slices.Equal(got, tt.want) {
			t.Errorf("%s: user %d scope %q: got %q, want %q", tt.name, tt.i, Scope(tt.i, tt.req, rules), got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		return Config{Regctl: "r", Self: "s", Wrk: "w", Store: "sqlite", Users: 100000, Rules: 10000,
			BcryptCost: 10, WarmUsers: 100, Duration: 10 * time.Second}
	}
	c := base()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Workloads) != 4 || !slices.Equal(c.Concurrency, []int{1, 16, 64}) {
		t.Errorf("defaults: %v %v", c.Workloads, c.Concurrency)
	}
	if got, want := c.cells(), 18; got != want {
		t.Errorf("cells = %d, want %d", got, want)
	}
	c.Repeat = 2
	if got, want := c.cells(), 30; got != want {
		t.Errorf("cells with repeat 2 = %d, want %d", got, want)
	}
	for name, mod := range map[string]func(*Config){
		"duration too long": func(c *Config) { c.Duration = time.Hour },
		"cost too high":     func(c *Config) { c.BcryptCost = 20 },
		"too few rules":     func(c *Config) { c.Rules = 5 },
		"too few users":     func(c *Config) { c.Users = 500 },
		"unknown workload":  func(c *Config) { c.Workloads = []string{"hot"} },
		"bad concurrency":   func(c *Config) { c.Concurrency = []int{0} },
		"bad store":         func(c *Config) { c.Store = "postgres://x" },
		"repeat too high":   func(c *Config) { c.Repeat = 9 },
		"no ferretdb":       func(c *Config) { c.Store = "ferretdb" },
	} {
		c := base()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWriteRequestsRejectsTabs(t *testing.T) {
	err := writeRequests(filepath.Join(t.TempDir(), "r"), []request{{Method: "GET", Path: "/a\tb"}})
	if err == nil {
		t.Fatal("a path with a tab was accepted")
	}
}

// The floor answers every request with a verifiable token of the shape
// regctl serve sends.
func TestFloor(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if err := keys.Generate(dir, keys.ES256, now); err != nil {
		t.Fatal(err)
	}
	ks, err := keys.Load(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewFloor(ks, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/auth/token?scope=x", strings.NewReader("grant_type=refresh_token")))
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s: status %d, type %q", method, rec.Code, rec.Header().Get("Content-Type"))
		}
		var resp map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"token", "access_token", "expires_in", "issued_at"} {
			if _, ok := resp[k]; !ok {
				t.Errorf("%s: no %q in %v", method, k, resp)
			}
		}
		tok := resp["token"].(string)
		jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		payload, err := jws.Verify(&ks.Signer.(*ecdsa.PrivateKey).PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		var c token.Claims
		if err := json.Unmarshal(payload, &c); err != nil || c.Audience != Service || len(c.Access) != 1 {
			t.Errorf("claims %+v, %v", c, err)
		}
	}
}

func TestEvaluate(t *testing.T) {
	r := &Report{}
	r.Settings.Concurrency = []int{16}
	r.Settings.Users, r.Settings.Rules = 100000, 10000
	r.Environment.Cores = 2
	r.Bcrypt.MedianMS, r.Bcrypt.CPUMS = 50, 50 // 2 cores: 40/s
	r.RuleEval = RuleEval{Rules: 10000, Samples: 10, P50NS: 2000}
	r.RegctlPeakRSSBytes = 70 << 20
	r.Staleness.BoundS, r.Staleness.RuleChangeS, r.Staleness.UserChangeS = 6, 5.2, -1
	r.Cells = []Cell{
		{Server: "floor", Workload: Warm, Concurrency: 16, TokensPerSecond: 10000, P99MS: 10},
		{Server: "regctl", Workload: Warm, Concurrency: 16, TokensPerSecond: 6000, P99MS: 25},
		{Server: "regctl", Workload: Cold, Concurrency: 16, TokensPerSecond: 37, CPUPerRequestUS: 60000},
	}
	r.evaluate()
	want := map[string]bool{
		"warm throughput c=16":                true,
		"warm p99 c=16":                       false,
		"cold throughput c=16":                true,
		"cold CPU spent in bcrypt c=16":       false,
		"rule evaluation p50, 10000 rules":    true,
		"peak RSS, 100000 users, 10000 rules": false,
		"staleness: rule change":              true,
		"staleness: user disabled":            false,
	}
	if len(r.Targets) != len(want) {
		t.Errorf("%d targets, want %d: %+v", len(r.Targets), len(want), r.Targets)
	}
	for _, tg := range r.Targets {
		if w, ok := want[tg.Name]; !ok || w != tg.Pass {
			t.Errorf("%s: pass %t (%s), want %t", tg.Name, tg.Pass, tg.Got, w)
		}
	}
	if r.Pass {
		t.Error("overall pass with failing targets")
	}
	if c := r.cell("regctl", Warm, 16); c.VsFloor != 0.6 {
		t.Errorf("vs floor %v, want 0.6", c.VsFloor)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil || !strings.Contains(b.String(), "FAIL") {
		t.Errorf("table: %v\n%s", err, b.String())
	}
}

// load.lua drives wrk as documented: every request line is sent, each
// thread taking its share, and the result is written as JSON. Needs wrk.
func TestLoadScript(t *testing.T) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk is not installed (Debian: apt-get install wrk); it is needed only by regctl-bench")
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := make([]byte, r.ContentLength)
		_, _ = r.Body.Read(body)
		mu.Lock()
		seen[r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+string(body)] = true
		mu.Unlock()
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	reqs := []request{
		{Method: "GET", Path: "/a?x=1", Auth: "Basic YTpi"},
		{Method: "GET", Path: "/b"},
		{Method: "POST", Path: "/c", Body: "grant_type=refresh_token&refresh_token=t"},
		{Method: "GET", Path: "/fail"},
	}
	w := &wrkRun{Bin: bin, Dir: t.TempDir(), Name: "t", URL: srv.URL, Reqs: reqs,
		Concurrency: 2, Threads: 2, Duration: time.Second, Timeout: 5 * time.Second}
	res, err := w.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 4 || res.Errors.Status == 0 || res.Errors.Status >= res.Requests || res.Latency.P99 <= 0 {
		t.Errorf("result %+v", res)
	}
	for _, r := range reqs {
		k := r.Method + " " + r.Path + " " + r.Auth + " " + r.Body
		if !seen[k] {
			t.Errorf("never received %q; received %v", k, seen)
		}
	}
	if _, err := os.Stat(filepath.Join(w.Dir, "t.requests")); err == nil {
		t.Error("request file left behind")
	}
}
