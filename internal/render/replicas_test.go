//go:build integration

package render_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/render/rendertest"
	"github.com/regctl/regctl/internal/testenv"
)

// TestTokenReplicasFailover: token.replicas as rendered, with real nginx
// in front of two real `regctl serve` processes on one store and a third
// upstream that answers 503 as a replica with its store down does. Token
// GETs from four clients run through nginx while one good replica is
// killed (SIGKILL, no goodbye) and later started again: no request fails,
// and nginx sends requests to the restarted one again.
//
//	go test -tags integration -run TestTokenReplicasFailover ./internal/render
func TestTokenReplicasFailover(t *testing.T) {
	nginx := rendertest.NginxBinary(t)
	regctl := testenv.BuildRegctl(t)
	dir := t.TempDir()
	keysDir := filepath.Join(dir, "keys")
	testenv.MustRun(t, nil, "", regctl, "keys", "generate", "--dir", keysDir)
	rc := testenv.Regctl{Bin: regctl, Store: "sqlite://" + filepath.Join(dir, "regctl.db")}
	rc.MustRun(t, "- seq: 10\n  match: {account: \"/.+/\"}\n  actions: [pull]\n", "acl", "import", "-")
	const pw = "replica-s3cret"
	rc.MustRun(t, pw+"\n", "user", "add", "ci", "--password-stdin")

	c := config.Defaults()
	c.Domains.Registry = "localhost"
	c.Token.Replicas = 2
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	sc := testenv.ServeConfig{Issuer: c.Token.Issuer, Service: c.TokenService(), KeysDir: keysDir, Store: rc.Store}
	replicas := []*testenv.Server{testenv.StartServe(t, regctl, sc), testenv.StartServe(t, regctl, sc)}
	var upstreams []string
	for _, r := range replicas {
		upstreams = append(upstreams, r.URL[len("http://"):])
	}
	// A third upstream answers every request 503, as a replica does while
	// its store is down (regctl serve exits if the store is unreachable
	// when it starts, so a stand-in plays the part here): nginx must pass
	// the GETs it gets on to another.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	unready := down.Listener.Addr().String()
	upstreams = append(upstreams, unready)
	// The rendered upstream block, pointed at the two loopback replicas
	// instead of the compose services regctl and regctl-2.
	site := rendertest.NewSite(t, &c, "127.0.0.1:1", upstreams, nil)
	if got := site.Data.TokenUpstreams; len(got) != 3 {
		t.Fatalf("rendered %d token upstreams", len(got))
	}
	site.Start(t, nginx)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: site.Roots, ServerName: "localhost"},
	}}
	tokenURL := fmt.Sprintf("https://127.0.0.1:%d/auth/token?", site.HTTPS) +
		url.Values{"service": {c.TokenService()}, "scope": {"repository:app:pull"}}.Encode()
	get := func() error {
		req, _ := http.NewRequest(http.MethodGet, tokenURL, nil)
		req.Host = "localhost"
		req.SetBasicAuth("ci", pw)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(); err != nil {
		t.Fatalf("token GET through nginx: %v\n--- nginx error log: see %s", err, site.Dir)
	}

	var ok, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := get(); err != nil {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	waitOK := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for ok.Load() < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitOK(50)
	before := ok.Load()
	if err := replicas[1].Proc.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = replicas[1].Proc.Wait()
	waitOK(before + 200)
	// The killed replica comes back on its address, as compose's restart
	// policy brings a container back.
	back := testenv.Start(t, "regctl-serve-again", nil, regctl, replicas[1].Proc.Cmd.Args[1:]...)
	back.WaitReady(t, 30*time.Second, testenv.HTTPCheck(replicas[1].URL+"/readyz", 200))
	// nginx tries it again once fail_timeout has passed since its failure.
	err := testenv.Poll(30*time.Second, 100*time.Millisecond, func() error {
		if !strings.Contains(back.Log(1<<20), "token issued") {
			return fmt.Errorf("the restarted replica has issued no token yet")
		}
		return nil
	})
	waitOK(ok.Load() + 100)
	close(stop)
	wg.Wait()

	t.Logf("%d token GETs through nginx, %d failed, one replica killed and restarted", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d token GETs failed while a replica was killed; the first: %v", failed.Load(), failures[:min(3, len(failures))])
	}
	if ok.Load() < before+300 {
		t.Errorf("only %d successful GETs", ok.Load())
	}
	if err != nil {
		t.Errorf("nginx did not send requests to the restarted replica again: %v", err)
	}
}
