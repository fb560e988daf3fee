//go:build integration

package token

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/mongo"
	"github.com/regctl/regctl/internal/testenv"
)

// slowProxy forwards TCP connections to target and holds every chunk of
// the server's answers for delay: a store that has become slow.
type slowProxy struct {
	ln         net.Listener
	target     string
	delay      atomic.Int64 // nanoseconds
	goroutines atomic.Int64 // the proxy's own, to leave out of the server's count
	wg         sync.WaitGroup
	mu         sync.Mutex
	conns      map[net.Conn]bool
}

func startSlowProxy(t *testing.T, target string) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.spawn(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *slowProxy) spawn(f func()) {
	p.goroutines.Add(1)
	p.wg.Go(func() {
		defer p.goroutines.Add(-1)
		f()
	})
}

func (p *slowProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *slowProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.spawn(func() { p.serve(c) })
	}
}

func (p *slowProxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.track(client, true)
	p.track(server, true)
	closeBoth := func() {
		client.Close()
		server.Close()
		p.track(client, false)
		p.track(server, false)
	}
	p.spawn(func() { // requests: as they come
		_, _ = io.Copy(server, client)
		closeBoth()
	})
	buf := make([]byte, 32<<10)
	for { // answers: each held for the delay
		n, err := server.Read(buf)
		if n > 0 {
			time.Sleep(time.Duration(p.delay.Load()))
			if _, werr := client.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	closeBoth()
}

func (p *slowProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestFaultSlowStore puts a proxy that delays every answer by 3 s between
// the token server (in this process, with the real MongoDB store) and
// FerretDB, with a store timeout of 500 ms. Requests that need the store
// must fail cleanly with 503 within the store timeout (plus a margin), the
// goroutine count must stay bounded while clients keep asking, and drop
// back once they stop; when the store is fast again, tokens are issued
// again by themselves.
func TestFaultSlowStore(t *testing.T) {
	base := testenv.Require(t, testenv.EnvMongoURI, "the mongodb:// URI of a running FerretDB")
	const (
		storeTimeout   = 500 * time.Millisecond
		reloadInterval = time.Second
		delay          = 3 * time.Second
		clients        = 32
		users          = 2000
	)
	db := testenv.UniqueName("slowstore")
	direct, err := mongo.Open(t.Context(), testenv.MongoURI(t, base, db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.Close(context.Background()) })
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for i := range users {
		if err := direct.CreateUser(t.Context(), &store.User{Username: fmt.Sprintf("u%04d", i), PasswordHash: string(hash),
			Labels: map[string][]string{"read": {"slow/*"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := direct.AddRule(t.Context(), acl.Rule{Seq: 1, Match: acl.Match{Name: ptr("${labels:read}")}, Actions: []string{"pull"}}); err != nil {
		t.Fatal(err)
	}

	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startSlowProxy(t, u.Host)
	st, err := mongo.Open(t.Context(), "mongodb://"+proxy.ln.Addr().String()+"/"+db, mongo.WithTimeout(storeTimeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	ks := testKeys(t)
	cfg := config.TokenServerDefaults()
	cfg.Issuer, cfg.Services = "regctl-slow", []string{"registry.slow.test"}
	cfg.ReloadInterval, cfg.StoreTimeout = reloadInterval, storeTimeout
	srv, err := New(cfg, st, ks, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv.Start(ctx)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	var next atomic.Int64 // each request a user not asked for before: a store query
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	do := func() (int, time.Duration, error) {
		q := url.Values{"service": {cfg.Services[0]}, "scope": {"repository:slow/app:pull"}}
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/auth/token?"+q.Encode(), nil)
		req.SetBasicAuth(fmt.Sprintf("u%04d", next.Add(1)%users), "pw")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, time.Since(start), err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(start), nil
	}
	if code, _, err := do(); code != http.StatusOK {
		t.Fatalf("healthy store: %d %v", code, err)
	}
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	baseline := runtime.NumGoroutine() - int(proxy.goroutines.Load())

	// Slow: clients keep asking for 8 s.
	proxy.delay.Store(int64(delay))
	slowStart := time.Now()
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		slowest  time.Duration
		waited   int // answers that waited for the store's timeout
		errs     []error
		wg       sync.WaitGroup
		peak     int
		peakAll  int
	)
	stop := make(chan struct{})
	sampler := make(chan struct{})
	go func() {
		defer close(sampler)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			all := runtime.NumGoroutine()
			peakAll = max(peakAll, all)
			peak = max(peak, all-int(proxy.goroutines.Load()))
		}
	}()
	for range clients {
		wg.Go(func() {
			for time.Since(slowStart) < 8*time.Second {
				code, d, err := do()
				mu.Lock()
				statuses[code]++
				slowest = max(slowest, d)
				if d >= storeTimeout*4/5 {
					waited++
				}
				if err != nil && len(errs) < 5 {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampler
	total := 0
	for _, n := range statuses {
		total += n
	}

	// Clients gone (their idle keep-alive connections too): the goroutines
	// drain, the proxy's aside.
	client.CloseIdleConnections()
	var after int
	if err := testenv.Poll(10*time.Second, 100*time.Millisecond, func() error {
		after = runtime.NumGoroutine() - int(proxy.goroutines.Load())
		if after > baseline+20 {
			return fmt.Errorf("%d goroutines, baseline %d", after, baseline)
		}
		return nil
	}); err != nil {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines did not drain: %v\n%s", err, buf[:runtime.Stack(buf, true)])
	}

	// Fast again: tokens without anyone's help.
	proxy.delay.Store(0)
	fastAgain := time.Now()
	var recovered time.Duration
	if err := testenv.Poll(30*time.Second, 50*time.Millisecond, func() error {
		if code, _, err := do(); code != http.StatusOK {
			return fmt.Errorf("status %d, %v", code, err) //nolint:errorlint // err may be nil here, and %w would print %!w(<nil>) (a non-200 status)
		}
		recovered = time.Since(fastAgain)
		return nil
	}); err != nil {
		t.Errorf("no recovery once the store is fast again: %v", err)
	}

	t.Logf("store answers delayed %s, store timeout %s, %d clients for 8 s: %d requests, statuses %v, %d of them after waiting out the store timeout, slowest %s; goroutines: baseline %d, peak %d without the proxy's (%d with), %d after the clients stopped; tokens again %s after the delay was lifted",
		delay, storeTimeout, clients, total, statuses, waited, slowest.Round(time.Millisecond), baseline, peak, peakAll, after, recovered.Round(time.Millisecond))

	if len(errs) > 0 {
		t.Errorf("transport errors: %v", errors.Join(errs...))
	}
	if statuses[http.StatusServiceUnavailable] == 0 || statuses[http.StatusServiceUnavailable] != total {
		t.Errorf("statuses %v: want every request answered 503", statuses)
	}
	if bound := storeTimeout + 2*time.Second; slowest > bound {
		t.Errorf("slowest answer %s, want at most the store timeout plus a margin (%s)", slowest, bound)
	}
	// Each client has a request in flight (handler, transport and
	// connection goroutines on both sides) and the driver a bounded
	// pool; nothing may grow with the number of requests.
	if limit := baseline + 8*clients + 100; peak > limit {
		t.Errorf("peak of %d goroutines (baseline %d) for %d clients: piling up (limit %d)", peak, baseline, clients, limit)
	}
}
