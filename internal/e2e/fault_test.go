//go:build integration

package e2e

import (
	"archive/tar"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

// Fault tests of the token server (issue #7, item 8): the store killed and
// restarted under load, and regctl serve killed during a docker push. The
// slow-store test is internal/token TestFaultSlowStore.

// startFerretDBAt starts FerretDB (binary bin) on addr with its state in
// dir, so that a killed one can be restarted with the same data.
func startFerretDBAt(t *testing.T, name, bin, addr, dir string) *testenv.Proc {
	t.Helper()
	p := testenv.Start(t, name, nil, bin,
		"--handler=sqlite",
		"--sqlite-url=file:"+dir+"/",
		"--listen-addr="+addr,
		"--state-dir="+dir,
		"--debug-addr=-",
		"--telemetry=disable",
	)
	p.WaitReady(t, 30*time.Second, testenv.DialCheck(addr))
	return p
}

// kill sends SIGKILL and waits for the process to be gone: no shutdown
// of any kind, as in a crash or an OOM kill.
func kill(t *testing.T, p *testenv.Proc) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", p.Name, err)
	}
	p.Stop() // reaps it
}

// startServeAt starts `regctl serve` on addr (127.0.0.1:PORT) with args
// after the listen address and waits until /readyz answers 200.
func startServeAt(t *testing.T, name, bin, addr string, args ...string) *testenv.Proc {
	t.Helper()
	p := testenv.Start(t, name, nil, bin, append([]string{"serve", "--listen", addr}, args...)...)
	p.WaitReady(t, 30*time.Second, testenv.HTTPCheck("http://"+addr+"/readyz", 200))
	return p
}

// sample is one token request of a load loop.
type sample struct {
	sent, done time.Time
	status     int
	retryAfter string
	granted    bool // the token grants the scope asked for
	err        string
}

// loadLoop runs workers that each ask for a token every pause until stop
// is closed or max samples are taken, and returns the samples.
type loadLoop struct {
	mu      sync.Mutex
	samples []sample
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(workers int, pause time.Duration, maxN int, do func() sample) *loadLoop {
	l := &loadLoop{stop: make(chan struct{})}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				s := do()
				l.mu.Lock()
				l.samples = append(l.samples, s)
				full := len(l.samples) >= maxN
				l.mu.Unlock()
				if full {
					return
				}
				time.Sleep(pause)
			}
		})
	}
	return l
}

func (l *loadLoop) finish() []sample {
	close(l.stop)
	l.wg.Wait()
	return l.samples
}

// firstAfter returns the earliest sample sent at or after t with status
// want, or nil.
func firstAfter(samples []sample, t time.Time, want int) *sample {
	var best *sample
	for i := range samples {
		s := &samples[i]
		if !s.sent.Before(t) && s.status == want && (best == nil || s.sent.Before(best.sent)) {
			best = s
		}
	}
	return best
}

// TestFaultStoreKilledDuringLoad kills the store (FerretDB, SIGKILL) while
// clients ask for tokens, and restarts it on the same port and data. The
// documented bound: a store change — and so an outage — takes effect
// within 2 × --reload-interval + --store-timeout. Requests sent later than
// that after the kill must all get 503 with Retry-After (never a token from
// data the server can no longer confirm, never a 401), and once the store
// is back the server must issue tokens again by itself.
func TestFaultStoreKilledDuringLoad(t *testing.T) {
	ferret := testenv.Require(t, testenv.EnvFerretDB, "the path of a ferretdb binary (FerretDB v1.24.2)")
	bin := testenv.BuildRegctl(t)
	const (
		reloadInterval = time.Second
		storeTimeout   = time.Second
		bound          = 2*reloadInterval + storeTimeout
	)
	dir := t.TempDir()
	dbAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	fdb := startFerretDBAt(t, "ferretdb", ferret, dbAddr, dir)
	rc := testenv.Regctl{Bin: bin, Store: "mongodb://" + dbAddr + "/fault"}
	aclFile := filepath.Join(dir, "acl.yml")
	if err := os.WriteFile(aclFile, []byte(classicACL), 0o600); err != nil {
		t.Fatal(err)
	}
	rc.MustRun(t, "", "acl", "import", aclFile)
	pw := "pw-" + testenv.RandomHex(12)
	rc.MustRun(t, pw+"\n", "user", "add", "loader", "--password-stdin", "--label", "read-only-access=load/*")
	keysDir := filepath.Join(dir, "keys")
	testenv.MustRun(t, nil, "", bin, "keys", "generate", "--dir", keysDir)
	serveAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	serve := startServeAt(t, "regctl-serve", bin, serveAddr, "--issuer", "regctl-fault", "--service", "registry.fault.test",
		"--keys", keysDir, "--store", rc.Store, "--reload-interval", reloadInterval.String(), "--store-timeout", storeTimeout.String(),
		"--log-level", "warn")

	tokenURL := "http://" + serveAddr + "/auth/token?" + url.Values{"service": {"registry.fault.test"}, "scope": {"repository:load/app:pull"}}.Encode()
	client := &http.Client{Timeout: 10 * time.Second}
	do := func() sample {
		s := sample{sent: time.Now()}
		req, _ := http.NewRequest(http.MethodGet, tokenURL, nil)
		req.SetBasicAuth("loader", pw)
		resp, err := client.Do(req)
		s.done = time.Now()
		if err != nil {
			s.err = err.Error()
			return s
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s.status, s.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
		s.granted = resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"token"`)
		return s
	}
	load := startLoad(4, 5*time.Millisecond, 200_000, do)
	time.Sleep(2 * time.Second)

	tKill := time.Now()
	kill(t, fdb)
	// The outage must show on /readyz as well.
	if err := testenv.Poll(bound+2*time.Second, 100*time.Millisecond, func() error {
		if testenv.HTTPCheck("http://"+serveAddr+"/readyz", http.StatusServiceUnavailable)() != nil {
			return fmt.Errorf("/readyz still 200")
		}
		return nil
	}); err != nil {
		t.Errorf("after the kill: %v", err)
	}
	time.Sleep(2*bound - time.Since(tKill))

	tRestart := time.Now()
	startFerretDBAt(t, "ferretdb-restarted", ferret, dbAddr, dir)
	tUp := time.Now()
	// Recovery: the first token after the store is back, with nothing done
	// to regctl serve.
	var tRecovered time.Time
	if err := testenv.Poll(60*time.Second, 20*time.Millisecond, func() error {
		load.mu.Lock()
		defer load.mu.Unlock()
		for _, s := range load.samples {
			if s.status == http.StatusOK && s.sent.After(tUp) {
				tRecovered = s.done
				return nil
			}
		}
		return fmt.Errorf("no token since the store came back")
	}); err != nil {
		t.Fatalf("no automatic recovery: %v", err)
	}
	time.Sleep(2 * time.Second)
	samples := load.finish()

	var (
		before, beforeOK                   int
		window200, window503, windowOther  int
		outage503, outage200, outageOther  int
		after, afterOK                     int
		lastStale                          time.Duration
		badRetryAfter, transportErrs, slow int
		slowest                            time.Duration
	)
	// A request waits for the store at most --store-timeout; the margin is
	// for a noisy machine.
	const latencyBound = storeTimeout + 3*time.Second
	first503 := firstAfter(samples, tKill, http.StatusServiceUnavailable)
	for _, s := range samples {
		if s.err != "" {
			transportErrs++
			continue
		}
		if s.status == http.StatusServiceUnavailable && s.retryAfter == "" {
			badRetryAfter++
		}
		d := s.done.Sub(s.sent)
		slowest = max(slowest, d)
		if d > latencyBound {
			slow++
			t.Logf("slow: status %d in %s, sent %s after the kill", s.status, d.Round(time.Millisecond), s.sent.Sub(tKill).Round(time.Millisecond))
		}
		switch {
		case s.sent.Before(tKill):
			before++
			if s.status == http.StatusOK && s.granted {
				beforeOK++
			}
		case s.sent.Before(tKill.Add(bound)):
			switch s.status {
			case http.StatusOK:
				window200++
				lastStale = max(lastStale, s.done.Sub(tKill))
			case http.StatusServiceUnavailable:
				window503++
			default:
				windowOther++
			}
		case s.sent.Before(tUp):
			switch s.status {
			case http.StatusOK:
				outage200++
			case http.StatusServiceUnavailable:
				outage503++
			default:
				outageOther++
			}
		case s.sent.After(tRecovered):
			after++
			if s.status == http.StatusOK && s.granted {
				afterOK++
			}
		}
	}
	firstOutage := "none"
	if first503 != nil {
		firstOutage = first503.done.Sub(tKill).Round(time.Millisecond).String()
	}
	t.Logf("%d token requests; before the kill %d/%d granted; within the bound (%s) after the kill: %d × 200 (last answered %s after the kill), %d × 503, first 503 %s after the kill; "+
		"from the bound until the store was back (%s): %d × 503, %d × 200, %d other; FerretDB restarted in %s, first token %s after it accepted connections; after recovery %d/%d granted; slowest answer %s; %d transport errors",
		len(samples), beforeOK, before, bound, window200, lastStale.Round(time.Millisecond), window503, firstOutage,
		tUp.Sub(tKill.Add(bound)).Round(time.Millisecond), outage503, outage200, outageOther,
		tUp.Sub(tRestart).Round(time.Millisecond), tRecovered.Sub(tUp).Round(time.Millisecond), afterOK, after,
		slowest.Round(time.Millisecond), transportErrs)

	if before == 0 || beforeOK != before {
		t.Errorf("before the kill %d of %d requests got a token", beforeOK, before)
	}
	if outage200 != 0 || outageOther != 0 || windowOther != 0 {
		t.Errorf("during the outage: %d tokens issued beyond the bound, %d answers other than 503 beyond it, %d within it (want none)", outage200, outageOther, windowOther)
	}
	if outage503 == 0 {
		t.Error("no 503 during the outage: the load loop did not run")
	}
	if badRetryAfter != 0 {
		t.Errorf("%d 503s without Retry-After", badRetryAfter)
	}
	if transportErrs != 0 || slow != 0 {
		t.Errorf("%d transport errors, %d answers slower than %s", transportErrs, slow, latencyBound)
	}
	if after == 0 || afterOK != after {
		t.Errorf("after recovery %d of %d requests got a token", afterOK, after)
	}
	if d := tRecovered.Sub(tUp); d > 2*reloadInterval+storeTimeout+5*time.Second {
		t.Errorf("recovery took %s", d)
	}
	if exited, err := serve.Exited(); exited {
		t.Errorf("regctl serve exited during the outage: %v", err)
	}
}

// writeBigLayer writes a tar (a rootfs for `docker import`) holding one
// file of size random bytes, which no compression shrinks, and returns its
// path.
func writeBigLayer(t *testing.T, dir string, size int) string {
	t.Helper()
	path := filepath.Join(dir, "big.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "big.bin", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size), ModTime: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, rand.Reader, int64(size)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFaultServeKilledDuringPush kills regctl serve (SIGKILL) while docker
// pushes an image with a 64 MiB layer (big enough for the push to outlast
// the kill on loopback), and again while it is down starts a
// second push and brings regctl serve back on the same address after a
// few seconds. A push needs the token server only for its tokens: what
// matters is that every push that failed succeeds when retried once the
// server is back, and that the registry then has both images.
func TestFaultServeKilledDuringPush(t *testing.T) {
	mongoURI := testenv.Require(t, testenv.EnvMongoURI, "the mongodb:// URI of a running FerretDB")
	regBin := testenv.Require(t, testenv.EnvRegistry2, "the path of Debian's docker-registry (distribution 2.8)")
	dockerBin := testenv.RequireBinary(t, "", "docker", "the docker CLI")
	dockerHost := testenv.Dockerd(t)
	bin := testenv.BuildRegctl(t)

	dir := t.TempDir()
	store := testenv.MongoURI(t, mongoURI, testenv.UniqueName("fault_push"))
	rc := testenv.Regctl{Bin: bin, Store: store}
	aclFile := filepath.Join(dir, "acl.yml")
	if err := os.WriteFile(aclFile, []byte(classicACL), 0o600); err != nil {
		t.Fatal(err)
	}
	rc.MustRun(t, "", "acl", "import", aclFile)
	pw := "pw-" + testenv.RandomHex(12)
	rc.MustRun(t, pw+"\n", "user", "add", "pusher", "--password-stdin", "--label", "full-access=fault/*")
	keysDir := filepath.Join(dir, "keys")
	testenv.MustRun(t, nil, "", bin, "keys", "generate", "--dir", keysDir)
	port := testenv.FreePort(t)
	serveAddr := fmt.Sprintf("127.0.0.1:%d", port)
	serveArgs := []string{"--issuer", "regctl-fault", "--service", "registry.fault.test", "--keys", keysDir,
		"--store", store, "--reload-interval", "1s"}
	serve := startServeAt(t, "regctl-serve", bin, serveAddr, serveArgs...)
	reg := testenv.StartRegistry(t, regBin, testenv.Distribution2, testenv.TokenConfig{
		Realm:          fmt.Sprintf("http://localhost:%d/auth/token", port),
		Service:        "registry.fault.test",
		Issuer:         "regctl-fault",
		RootCertBundle: filepath.Join(keysDir, "bundle.pem"),
	})

	env := []string{"DOCKER_HOST=" + dockerHost, "DOCKER_CONFIG=" + filepath.Join(dir, "docker")}
	docker := func(args ...string) testenv.Result { return testenv.Run(t, env, "", dockerBin, args...) }
	if r := testenv.Run(t, env, pw, dockerBin, "login", reg.Host, "-u", "pusher", "--password-stdin"); r.Code != 0 {
		t.Fatalf("docker login: exit %d\n%s", r.Code, r.Output())
	}
	// Two repositories: the daemon must not reuse push 1's token for push 2.
	refs := []string{reg.Host + "/fault/one:big", reg.Host + "/fault/two:big"}
	for i, ref := range refs {
		layer := writeBigLayer(t, t.TempDir(), 64<<20)
		if r := docker("import", layer, ref); r.Code != 0 {
			t.Fatalf("docker import: exit %d\n%s", r.Code, r.Output())
		}
		t.Cleanup(func() { docker("rmi", refs[i]) })
	}
	// pushAsync starts docker push; done is closed when it has exited,
	// wait returns its result and how long it took.
	pushAsync := func(ref string) (done chan struct{}, wait func() (testenv.Result, time.Duration)) {
		done = make(chan struct{})
		var r testenv.Result
		var d time.Duration
		start := time.Now()
		go func() {
			defer close(done)
			r = docker("push", ref)
			d = time.Since(start)
		}()
		return done, func() (testenv.Result, time.Duration) {
			<-done
			return r, d
		}
	}
	pushToken := regexp.MustCompile(`msg="token issued" user=pusher .*requested="?repository:fault/one:[^" ]*push`)

	// 1. Killed once the push has its token: the upload is under way.
	done1, wait1 := pushAsync(refs[0])
	if err := testenv.Poll(60*time.Second, 5*time.Millisecond, func() error {
		if pushToken.MatchString(serve.Log(0)) {
			return nil
		}
		return fmt.Errorf("no push token issued yet")
	}); err != nil {
		t.Fatal(err)
	}
	kill(t, serve)
	tKill := time.Now()
	running := true
	select {
	case <-done1:
		running = false
	default:
	}
	r1, d1 := wait1()
	into := d1 - time.Since(tKill) // how long the push had run when the server died
	if !running {
		t.Errorf("push 1 had finished before regctl serve was killed: not a fault during a push")
	}

	// 2. A push that starts while the server is down; the server comes back
	// on the same address 3 s later.
	_, wait2 := pushAsync(refs[1])
	time.Sleep(3 * time.Second)
	serve = startServeAt(t, "regctl-serve-restarted", bin, serveAddr, serveArgs...)
	tBack := time.Now()
	r2, d2 := wait2()

	// 3. Retry what failed, now that the server is back.
	retries := 0
	for i, r := range []testenv.Result{r1, r2} {
		if r.Code == 0 {
			continue
		}
		retries++
		t0 := time.Now()
		if rr := docker("push", refs[i]); rr.Code != 0 {
			t.Errorf("retried docker push %s after regctl serve came back: exit %d\n%s", refs[i], rr.Code, rr.Output())
		} else {
			t.Logf("retried push of %s succeeded in %s", refs[i], time.Since(t0).Round(time.Millisecond))
		}
	}
	// The registry has both images, complete.
	for _, ref := range refs {
		repoTag := strings.TrimPrefix(ref, reg.Host+"/")
		repo, tag, _ := strings.Cut(repoTag, ":")
		if code := headWithToken(t, "http://"+serveAddr, reg.URL, "pusher", pw, repo, tag); code != http.StatusOK {
			t.Errorf("HEAD %s after the retries: status %d", ref, code)
		}
	}
	t.Logf("push 1 (regctl serve killed %s into it, the push still running): exit %d after %s%s; push 2 (started with regctl serve down, back %s after the kill): exit %d after %s%s, docker's own retry used: %t; %d pushes retried by hand",
		into.Round(time.Millisecond), r1.Code, d1.Round(time.Millisecond), firstLine(r1), tBack.Sub(tKill).Round(time.Millisecond),
		r2.Code, d2.Round(time.Millisecond), firstLine(r2), strings.Contains(r2.Output(), "Retrying in"), retries)
}

// firstLine is ": " and the last line of a failed command's output, for a
// log line.
func firstLine(r testenv.Result) string {
	if r.Code == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(r.Output()), "\n")
	return ": " + lines[len(lines)-1]
}

// headWithToken asks the token server at serveURL for a pull token as user
// and HEADs repo:tag's manifest on the registry at regURL.
func headWithToken(t *testing.T, serveURL, regURL, user, pw, repo, tag string) int {
	t.Helper()
	q := url.Values{"service": {"registry.fault.test"}, "scope": {"repository:" + repo + ":pull"}}
	req, _ := http.NewRequest(http.MethodGet, serveURL+"/auth/token?"+q.Encode(), nil)
	req.SetBasicAuth(user, pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tr tokenResponse
	err = json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token for %s: status %d, %v", repo, resp.StatusCode, err)
	}
	req, _ = http.NewRequest(http.MethodHead, regURL+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Authorization", "Bearer "+tr.Token)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
