//go:build integration

package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/certs"
	"github.com/regctl/regctl/internal/certs/certstest"
)

// pebbleEnv is a certsEnv on the real clock whose certs commands talk to a
// fresh Pebble; nginx, if started, serves ROOT/acme-webroot on the port
// Pebble validates HTTP-01 on.
type pebbleEnv struct {
	*certsEnv
	pebble   *certstest.Pebble
	httpPort int
	nginx    *certstest.Nginx
}

func newPebbleEnv(t *testing.T, withNginx bool) *pebbleEnv {
	t.Helper()
	e := &pebbleEnv{certsEnv: newCertsEnv(t), httpPort: certstest.FreePort(t)}
	e.f.Now = time.Now
	e.pebble = certstest.StartPebble(t, certstest.PebbleOptions{HTTPPort: e.httpPort})
	if withNginx {
		webroot := certs.Layout{Root: e.root}.Webroot()
		if err := os.MkdirAll(webroot, 0o755); err != nil {
			t.Fatal(err)
		}
		e.nginx = certstest.StartNginx(t, certstest.NginxConfig{HTTPPort: e.httpPort, Webroot: webroot})
		e.reloader = e.nginx.Reloader(certs.ExecRunner{})
	} else {
		e.reloader = &certstest.RecordingReloader{}
	}
	return e
}

// certs runs `regctl certs VERB ARGS... --root ... --acme-directory PEBBLE ...`.
func (e *pebbleEnv) certs(want int, verb string, args ...string) string {
	e.t.Helper()
	all := append([]string{"certs", verb}, args...)
	all = append(all, "--root", e.root, "--acme-email", "ops@example.com",
		"--acme-directory", e.pebble.Directory, "--acme-ca-roots", e.pebble.APIRootsFile,
		"--http-address", "127.0.0.1", "--http-port", strconv.Itoa(e.httpPort))
	start := time.Now()
	e.must(want, all...)
	e.t.Logf("regctl %s (%s):\n%s%s", strings.Join(all[:len(all)-12], " "), time.Since(start).Round(time.Millisecond), e.out, e.errOut)
	return e.out.String()
}

func (e *pebbleEnv) load(name string) *certs.Cert {
	e.t.Helper()
	c, err := certs.Store{Dir: certs.Layout{Root: e.root}.LiveDir()}.Load(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func wantContains(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
}

// TestCertsPebbleStandalone: the first issuance, with nothing on the HTTP
// port, uses the standalone server and reloads no nginx; then status exit
// codes and the staging-over-production refusal against a real CA.
func TestCertsPebbleStandalone(t *testing.T) {
	e := newPebbleEnv(t, false)
	out := e.certs(0, "obtain", "localhost", "--cert-profile", certstest.ProfileClassic)
	wantContains(t, out, "Obtained the certificate for localhost (challenge standalone, profile classic)",
		"nginx        not reloaded (standalone challenge: nginx is not running)")
	if got := e.reloader.(*certstest.RecordingReloader).Calls(); got != "" {
		t.Errorf("reloader called: %q", got)
	}
	prod := e.load("localhost")
	if prod.Meta.Staging || prod.Meta.Directory != e.pebble.Directory || prod.Meta.Challenge != "standalone" {
		t.Errorf("meta %+v", prod.Meta)
	}
	for path, mode := range map[string]os.FileMode{
		filepath.Join(prod.Dir, certs.PrivkeyFile): 0o600,
		prod.Dir: 0o700,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %v", path, err, mode)
		}
	}

	// status: fine by default, warning with a 100-day threshold.
	e.must(0, "certs", "status", "--root", e.root)
	wantContains(t, e.out.String(), "localhost", "Pebble Intermediate CA", "89")
	e.must(1, "certs", "status", "--root", e.root, "--warn-days", "100")
	wantContains(t, e.errOut.String(), "warning: localhost: expires in 3 months, within the warning window of 100 days")

	// A staging CA never replaces the production certificate...
	e.certs(1, "obtain", "localhost", "--cert-profile", certstest.ProfileClassic, "--staging", "--force")
	wantContains(t, e.errOut.String(), "refusing to replace a production certificate with one from a staging CA", "--break-my-certs")
	e.certs(1, "renew", "--staging", "--force", "--no-random-sleep")
	wantContains(t, e.out.String(), "localhost: FAILED: refusing to replace a production certificate")
	if got := e.load("localhost"); got.Meta.Serial != prod.Meta.Serial {
		t.Fatal("the production certificate was replaced")
	}
	// ...unless asked to.
	e.certs(0, "obtain", "localhost", "--cert-profile", certstest.ProfileClassic, "--staging", "--break-my-certs")
	if got := e.load("localhost"); !got.Meta.Staging || got.Meta.Serial == prod.Meta.Serial {
		t.Errorf("after --break-my-certs: %+v", got.Meta)
	}
	e.must(0, "certs", "status", "--root", e.root)
	wantContains(t, e.out.String(), "(staging)")
	// Production replaces staging without a flag, even when not due.
	e.certs(0, "obtain", "localhost", "--cert-profile", certstest.ProfileClassic)
	wantContains(t, e.out.String(), "Replaced the certificate for localhost")
	if got := e.load("localhost"); got.Meta.Staging {
		t.Error("still staging")
	}
}

// TestCertsPebbleWebrootRenewTwice: with nginx serving the webroot, obtain
// picks the webroot by itself; renew (forced by --days) renews through
// nginx and reloads it; a second renew is a no-op that reloads nothing.
func TestCertsPebbleWebrootRenewTwice(t *testing.T) {
	e := newPebbleEnv(t, true)
	out := e.certs(0, "obtain", "localhost", "--cert-profile", certstest.ProfileClassic)
	wantContains(t, out, "(challenge webroot, profile classic)", "nginx        configuration OK, reloaded")
	access, _ := os.ReadFile(filepath.Join(e.nginx.Prefix, "access.log"))
	if n := strings.Count(string(access), "GET /.well-known/acme-challenge/") - strings.Count(string(access), "regctl-probe-"); n == 0 {
		t.Errorf("nginx served no ACME challenge:\n%s", access)
	}
	first := e.load("localhost")
	reloads := e.nginx.WaitReloads(1, 10*time.Second)
	if reloads != 1 {
		t.Errorf("nginx reloaded %d times after obtain, want 1", reloads)
	}

	out = e.certs(0, "renew", "--days", "100", "--no-random-sleep")
	wantContains(t, out, "localhost: renewed (renew-before threshold reached)", "nginx: configuration OK, reloaded")
	second := e.load("localhost")
	if second.Meta.Serial == first.Meta.Serial || second.Meta.Challenge != "webroot" || second.Meta.Replaces == "" {
		t.Errorf("after renew: %+v", second.Meta)
	}
	if got := e.nginx.WaitReloads(reloads+1, 10*time.Second); got != reloads+1 {
		t.Errorf("nginx reloads %d, want %d", got, reloads+1)
	}

	out = e.certs(0, "renew", "--no-random-sleep")
	wantContains(t, out, "localhost: not due; next renewal", "(ARI window not open yet)")
	if strings.Contains(out, "nginx") {
		t.Errorf("a no-op renew mentions nginx:\n%s", out)
	}
	if got := e.nginx.Reloads(); got != reloads+1 {
		t.Errorf("a no-op renew reloaded nginx (%d reloads)", got)
	}
	if got := e.load("localhost"); got.Meta.Serial != second.Meta.Serial || !got.Meta.ARI.Valid() {
		t.Errorf("no-op renew: serial %s (was %s), ARI %+v", got.Meta.Serial, second.Meta.Serial, got.Meta.ARI)
	}
	if !strings.Contains(e.pebble.Log(), "is a replacement of") {
		t.Error("Pebble saw no replacement order (ARI replaces)")
	}
}

// TestCertsPebbleARIZeroDowntime: a short-lived certificate whose ARI
// window opens before the next run is renewed, nginx reloads, and a client
// connecting all along sees the new certificate and never a failure.
func TestCertsPebbleARIZeroDowntime(t *testing.T) {
	e := newPebbleEnv(t, true)
	e.certs(0, "obtain", "localhost", "--cert-profile", certstest.ProfileShortlived)
	old := e.load("localhost")
	if life := old.Leaf.NotAfter.Sub(old.Leaf.NotBefore).Round(time.Hour); life != certstest.ShortlivedValidity {
		t.Fatalf("lifetime %s, want %s", life, certstest.ShortlivedValidity)
	}
	e.must(0, "certs", "dhparams", "--root", e.root)

	// Serve TLS with it.
	l := certs.Layout{Root: e.root}
	httpsPort := certstest.FreePort(t)
	e.nginx.Configure(t, certstest.NginxConfig{
		HTTPPort: e.httpPort, Webroot: l.Webroot(),
		HTTPSPort: httpsPort, Fullchain: l.Fullchain("localhost"), Privkey: l.Privkey("localhost"), DHParams: l.DHParams(),
	})
	e.nginx.Reload(t)

	roots := e.pebble.IssuingRoots(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort))
	client := newTLSProber(addr, roots)
	if err := client.waitFor(old.Meta.Serial, 20*time.Second); err != nil {
		t.Fatalf("nginx does not serve the first certificate: %v", err)
	}
	client.start()
	defer client.stop()
	time.Sleep(300 * time.Millisecond) // some requests before the renewal

	// The ARI window opens 6h after issuance: not before a run in 1h...
	out := e.certs(0, "renew", "--interval", "1h", "--no-random-sleep")
	wantContains(t, out, "localhost: not due; next renewal", "(ARI window not open yet)")
	// ...but before the next run of a 12h schedule: due now.
	reloads := e.nginx.WaitReloads(2, 10*time.Second) // the obtain's and the test's
	out = e.certs(0, "renew", "--no-random-sleep")
	wantContains(t, out, "localhost: renewed (ARI window opens before the next run)", "nginx: configuration OK, reloaded")
	renewed := e.load("localhost")
	if renewed.Meta.Serial == old.Meta.Serial || renewed.Meta.Profile != certstest.ProfileShortlived {
		t.Fatalf("after renew: %+v", renewed.Meta)
	}
	if got := e.nginx.WaitReloads(reloads+1, 10*time.Second); got != reloads+1 {
		t.Errorf("nginx reloads %d, want %d", got, reloads+1)
	}
	if err := client.waitFor(renewed.Meta.Serial, 20*time.Second); err != nil {
		t.Fatalf("nginx does not serve the renewed certificate: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	client.stop()
	st := client.stats()
	t.Logf("client: %d requests, %d failures, serials %v", st.ok+st.failed, st.failed, st.serials)
	if st.failed != 0 {
		t.Errorf("the client saw %d failures during the renewal, first: %v", st.failed, st.firstErr)
	}
	if st.serials[old.Meta.Serial] == 0 || st.serials[renewed.Meta.Serial] == 0 || st.ok < 10 {
		t.Errorf("client saw serials %v in %d requests; want both %s and %s", st.serials, st.ok, old.Meta.Serial, renewed.Meta.Serial)
	}
	if !strings.Contains(e.pebble.Log(), "is a replacement of") {
		t.Error("Pebble saw no replacement order (ARI replaces)")
	}
}

// tlsProber connects to a TLS server in a loop, each time with a new
// connection, verifies the chain and an HTTP 200, and counts what it sees.
type tlsProber struct {
	addr  string
	roots *x509.CertPool

	mu       sync.Mutex
	ok       int
	failed   int
	firstErr error
	serials  map[string]int
	done     chan struct{}
	stopped  chan struct{}
}

type proberStats struct {
	ok, failed int
	firstErr   error
	serials    map[string]int
}

func newTLSProber(addr string, roots *x509.CertPool) *tlsProber {
	return &tlsProber{addr: addr, roots: roots, serials: map[string]int{}}
}

// probe makes one request and returns the serial of the served leaf.
func (p *tlsProber) probe() (string, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", p.addr, &tls.Config{ServerName: "localhost", RootCAs: p.roots})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := io.ReadAll(conn)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 200") || !strings.HasSuffix(string(resp), "ok\n") {
		return "", fmt.Errorf("unexpected response %q", resp)
	}
	return fmt.Sprintf("%X", conn.ConnectionState().PeerCertificates[0].SerialNumber), nil
}

// waitFor probes until the server presents the serial.
func (p *tlsProber) waitFor(serial string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := p.probe()
		if err == nil && got == serial {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: serial %s, err %v; want serial %s", timeout, got, err, serial) //nolint:errorlint // err may be nil here
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *tlsProber) start() {
	p.done, p.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.stopped)
		for {
			select {
			case <-p.done:
				return
			default:
			}
			serial, err := p.probe()
			p.mu.Lock()
			if err != nil {
				p.failed++
				if p.firstErr == nil {
					p.firstErr = err
				}
			} else {
				p.ok++
				p.serials[serial]++
			}
			p.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
}

func (p *tlsProber) stop() {
	if p.done == nil {
		return
	}
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	<-p.stopped
}

func (p *tlsProber) stats() proberStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := proberStats{ok: p.ok, failed: p.failed, firstErr: p.firstErr, serials: map[string]int{}}
	for k, v := range p.serials {
		s.serials[k] = v
	}
	return s
}
