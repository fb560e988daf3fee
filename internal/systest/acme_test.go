//go:build integration

package systest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/certs/certstest"
	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/testenv/freshhost"
)

// acmeEnvChalltestsrv names a pebble-challtestsrv v2.10.3 binary (the
// mock DNS server that comes with Pebble).
const acmeEnvChalltestsrv = "REGCTL_TEST_CHALLTESTSRV"

// Ports of the ACME CA and its DNS server, on the host's OuterIP. The DNS
// server answers on 53: /etc/resolv.conf has no way to name another port.
const (
	acmeDNSPort        = 53
	acmeChallMgmtPort  = 8055
	acmePebblePort     = 14000
	acmePebbleMgmtPort = 15000
)

// acmeCA is Pebble and pebble-challtestsrv running in a host's outside
// namespace: the host's DNS and its certificate authority.
type acmeCA struct {
	h *freshhost.Host
	// Directory is Pebble's ACME directory URL, on OuterIP.
	Directory string
	// APIRoot is the PEM of the CA that signed Pebble's API certificate
	// (made here: Pebble's own test certificate names no OuterIP).
	APIRoot []byte
	client  *http.Client // trusts APIRoot, dials from outside
	mgmt    string       // Pebble's management API
	chall   string       // challtestsrv's management API
}

// acmeStartCA starts challtestsrv (DNS on OuterIP:53, A records only as
// set, nothing by default) and Pebble (HTTP-01 validated on port 80 of
// whatever the DNS says, resolved through challtestsrv), both in the
// outside namespace, and makes name resolve to the host.
func acmeStartCA(t *testing.T, h *freshhost.Host, pebbleBin, challBin, name string) *acmeCA {
	t.Helper()
	outer := h.OuterIP.String()
	ca := &acmeCA{
		h:         h,
		Directory: fmt.Sprintf("https://%s:%d/dir", outer, acmePebblePort),
		mgmt:      fmt.Sprintf("https://%s:%d", outer, acmePebbleMgmtPort),
		chall:     fmt.Sprintf("http://%s:%d", outer, acmeChallMgmtPort),
	}

	chall := h.StartOutside(t, "challtestsrv-"+h.Name, nil, challBin,
		"-dnsserver", net.JoinHostPort(outer, strconv.Itoa(acmeDNSPort)),
		"-management", net.JoinHostPort(outer, strconv.Itoa(acmeChallMgmtPort)),
		"-http01=", "-https01=", "-tlsalpn01=", "-doh=",
		"-defaultIPv4=", "-defaultIPv6=")
	plain := h.HTTPClient(5 * time.Second)
	body, _ := json.Marshal(map[string]any{"host": name, "addresses": []string{h.IP.String()}})
	chall.WaitReady(t, time.Minute, func() error {
		resp, err := plain.Post(ca.chall+"/add-a", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST /add-a: %s", resp.Status)
		}
		return nil
	})

	// Pebble's API certificate, for OuterIP.
	apiCA := certstest.NewCA(t, "regctl systest: Pebble API CA")
	b := apiCA.Issue([]string{outer}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	ca.APIRoot = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: apiCA.Cert.Raw})
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	for p, data := range map[string][]byte{certFile: b.Fullchain, keyFile: b.PrivateKey} {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	confPath := certstest.WritePebbleConfig(t, dir, certstest.PebbleConfig{
		ListenAddress:     net.JoinHostPort(outer, strconv.Itoa(acmePebblePort)),
		ManagementAddress: net.JoinHostPort(outer, strconv.Itoa(acmePebbleMgmtPort)),
		Certificate:       certFile,
		PrivateKey:        keyFile,
		HTTPPort:          80,
		TLSPort:           443,
		// One profile: an order naming none always gets it.
		Profiles: map[string]certstest.Profile{certstest.ProfileClassic: certstest.DefaultProfiles()[certstest.ProfileClassic]},
	})
	pebble := h.StartOutside(t, "pebble-"+h.Name, certstest.PebbleEnv(),
		pebbleBin, "-config", confPath, "-dnsserver", net.JoinHostPort(outer, strconv.Itoa(acmeDNSPort)))
	tr := h.Transport()
	tr.TLSClientConfig = &tls.Config{RootCAs: apiCA.Pool()}
	ca.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	pebble.WaitReady(t, time.Minute, func() error {
		_, err := ca.get(ca.Directory)
		return err
	})
	return ca
}

func (ca *acmeCA) get(url string) ([]byte, error) {
	resp, err := ca.client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body, nil
}

// IssuingRoot is the PEM of the root Pebble issues under.
func (ca *acmeCA) IssuingRoot(t *testing.T) []byte {
	t.Helper()
	body, err := ca.get(ca.mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("Pebble's issuing root: %v", err)
	}
	return body
}

// acmeServed is the certificate chain nginx serves on the host's 443 for
// name, seen from outside (not verified).
func acmeServed(t *testing.T, h *freshhost.Host, name string) []*x509.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := h.DialContext(ctx, "tcp", net.JoinHostPort(h.IP.String(), "443"))
	if err != nil {
		t.Fatalf("dial %s:443 from outside: %v", h.IP, err)
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatalf("TLS handshake with %s:443 (SNI %s): %v", h.IP, name, err)
	}
	return tc.ConnectionState().PeerCertificates
}

// acmeLeaf parses the first certificate of a PEM chain.
func acmeLeaf(t *testing.T, chain []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(chain)
	if b == nil {
		t.Fatalf("no PEM certificate in %q", chain)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func acmeDescribe(c *x509.Certificate) string {
	return fmt.Sprintf("subject %q, issuer %q, serial %x, %s to %s", c.Subject.CommonName, c.Issuer.CommonName,
		c.SerialNumber, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
}

// acmePulls is what acmePullLoop saw.
type acmePulls struct {
	ok     int
	failed []string
}

// acmePullLoop runs `crane digest ref` outside the host, verifying TLS
// against roots (a PEM file) and as user (docker config cfg), every
// interval until stop is closed (at least once), then reports.
func acmePullLoop(h *freshhost.Host, crane, cfg, roots, ref, want string, interval time.Duration, stop <-chan struct{}) <-chan acmePulls {
	done := make(chan acmePulls, 1)
	go func() {
		var res acmePulls
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			// `ip netns exec` runs crane in the outside namespace, with
			// its /etc/hosts (name -> host) mounted over /etc/hosts.
			cmd := exec.CommandContext(ctx, "ip", "netns", "exec", h.Netns, crane, "digest", ref)
			cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg, "HOME="+cfg, "SSL_CERT_FILE="+roots)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			cancel()
			got := strings.TrimSpace(string(out))
			switch {
			case err != nil:
				res.failed = append(res.failed, fmt.Sprintf("%s (+%s): %v: %s", start.Format("15:04:05.000"), time.Since(start).Round(time.Millisecond), err, lastLine(got)))
			case got != want:
				res.failed = append(res.failed, fmt.Sprintf("%s: digest %q, want %q", start.Format("15:04:05.000"), got, want))
			default:
				res.ok++
			}
			select {
			case <-stop: // first: a closed stop ends the loop whatever interval is
				done <- res
				return
			default:
			}
			select {
			case <-stop:
				done <- res
				return
			case <-time.After(interval):
			}
		}
	}()
	return done
}

// TestInitACMEFreshHost: `regctl init --self-signed`, then `regctl init`
// with an ACME CA (Pebble, outside the host) replaces the self-signed
// certificate with one the CA issued, and installs the renewal timer;
// then `regctl certs renew --force` swaps the certificate while a client
// keeps pulling, without a failed pull. The host resolves its name through
// a DNS server (pebble-challtestsrv) as Pebble does: no hosts-file entry,
// no --skip-check dns.
func TestInitACMEFreshHost(t *testing.T) {
	freshhost.RequireMachine(t)
	t.Parallel()
	crane := testenv.Require(t, testenv.EnvCrane, "the path of a crane binary (go-containerregistry v0.22.1)")
	pebbleBin := certstest.PebbleBinary(t)
	challBin := testenv.Require(t, acmeEnvChalltestsrv, "the path of a pebble-challtestsrv v2.10.3 binary (scripts/test-deps.sh builds it into ~/.cache/regctl-test/pebble-challtestsrv-v2.10.3/)")
	a := freshhost.Cache(t)

	h := bootRegctlHost(t, freshhost.Options{
		Variant:     freshhost.Full,
		MountRepo:   true,
		BootTimeout: 5 * time.Minute,
	})

	ca := acmeStartCA(t, h, pebbleBin, challBin, registryName)
	// The host resolves names through challtestsrv, as it would through
	// its provider's resolver: init's DNS preflight asks it.
	h.CopyIn(t, "/etc/resolv.conf", []byte("nameserver "+h.OuterIP.String()+"\n"), 0o644)
	if strings.Contains(string(h.ReadFile(t, "/etc/hosts")), registryName) {
		t.Fatalf("the host's /etc/hosts names %s: the test wants DNS to resolve it", registryName)
	}
	if r := h.MustRun(t, "", "getent", "ahostsv4", registryName); !strings.Contains(r.Stdout, h.IP.String()) {
		t.Fatalf("%s does not resolve to %s on the host:\n%s", registryName, h.IP, r.Output())
	}
	h.Mirror(t, a.Images.Nginx, a.Images.Registry)

	d := newDeployment(t, h, crane)
	h.WriteRegctlYAML(t, registryName, "backend: sqlite", "")

	// 1. Self-signed.
	r, took := d.init(t, "--self-signed")
	t.Logf("TIMING init self-signed: %s", took.Round(time.Millisecond))
	if r.Code != 0 {
		t.Fatalf("init --self-signed: exit %d\n%s", r.Code, r.Output())
	}
	if c := acmeServed(t, h, registryName)[0]; c.Issuer.String() != c.Subject.String() {
		t.Fatalf("after init --self-signed, nginx serves a certificate not self-signed: %s", acmeDescribe(c))
	}
	pw := d.addUser(t, "puller", "--label", "full-access=acme/*")
	if r := d.login(t, "puller", pw); r.Code != 0 {
		t.Fatalf("login: %s", r.Output())
	}
	if err := testenv.Poll(time.Minute, time.Second, func() error {
		if r := d.push(t, "puller", "acme/app:1"); r.Code != 0 {
			return fmt.Errorf("push: exit %d: %s", r.Code, lastLine(r.Output()))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pushed := d.digest(t, "puller", "acme/app:1")
	if pushed.Code != 0 {
		t.Fatalf("digest: %s", pushed.Output())
	}
	want := strings.TrimSpace(pushed.Stdout)

	// 2. The CA: its API's root in the host's trust store (as a private
	// CA's would be), acme.ca and acme.email in regctl.yaml, and init
	// again, without --self-signed.
	h.CopyIn(t, "/usr/local/share/ca-certificates/regctl-systest-pebble-api.crt", ca.APIRoot, 0o644)
	h.MustRun(t, "", "update-ca-certificates")
	h.WriteRegctlYAML(t, registryName, "backend: sqlite", "acme:\n  email: ops@regctl.test\n  ca: "+ca.Directory+"\n")
	r, took = d.init(t)
	t.Logf("TIMING init switching to ACME: %s", took.Round(time.Millisecond))
	if r.Code != 0 {
		t.Fatalf("init with ACME: exit %d\n%s", r.Code, r.Output())
	}
	if strings.Contains(r.Stderr, "self-signed certificate for") {
		t.Errorf("init without --self-signed made a self-signed certificate:\n%s", r.Stderr)
	}
	rootsFile := filepath.Join(t.TempDir(), "pebble-roots.pem")
	if err := os.WriteFile(rootsFile, ca.IssuingRoot(t), 0o644); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.IssuingRoot(t))
	certPath := path.Join("/opt/regctl", render.CertFile(registryName))
	checkIssued := func(when string) *x509.Certificate {
		t.Helper()
		chain := acmeServed(t, h, registryName)
		leaf := chain[0]
		t.Logf("%s: nginx serves %s", when, acmeDescribe(leaf))
		if !strings.Contains(leaf.Issuer.CommonName, "Pebble") || leaf.Issuer.String() == leaf.Subject.String() {
			t.Fatalf("%s: nginx serves %s, want a certificate issued by Pebble", when, acmeDescribe(leaf))
		}
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: registryName, Roots: roots, Intermediates: inter}); err != nil {
			t.Errorf("%s: the served chain does not verify against Pebble's root for %s: %v", when, registryName, err)
		}
		if file := acmeLeaf(t, h.ReadFile(t, certPath)); file.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Errorf("%s: nginx serves serial %x, %s holds %x", when, leaf.SerialNumber, certPath, file.SerialNumber)
		}
		return leaf
	}
	before := checkIssued("after init with ACME")
	if r := h.Run(t, "", "systemctl", "is-enabled", "regctl-renew.timer"); strings.TrimSpace(r.Stdout) != "enabled" {
		t.Errorf("regctl-renew.timer is %q after init, want enabled\n%s", strings.TrimSpace(r.Stdout), r.Output())
	}
	if r := h.Run(t, "", "systemctl", "is-active", "regctl-renew.timer"); strings.TrimSpace(r.Stdout) != "active" {
		t.Errorf("regctl-renew.timer is %q after init, want active\n%s", strings.TrimSpace(r.Stdout), r.Output())
	}
	// A client that trusts only Pebble's root pulls.
	pulls := make(chan struct{})
	close(pulls)
	if res := <-acmePullLoop(h, crane, d.config(t, "puller"), rootsFile, registryName+"/acme/app:1", want, 0, pulls); res.ok != 1 || len(res.failed) != 0 {
		t.Fatalf("a verified pull after init with ACME: %d ok, failed: %v", res.ok, res.failed)
	}

	// 3. Renewal, as the timer runs it (plus --force), while a client
	// pulls every 200 ms.
	unit := h.MustRun(t, "", "systemctl", "cat", "regctl-renew.service").Stdout
	var argv []string
	for _, line := range strings.Split(unit, "\n") {
		if cmd, ok := strings.CutPrefix(strings.TrimSpace(line), "ExecStart="); ok {
			argv = strings.Fields(cmd)
		}
	}
	if len(argv) == 0 || !strings.HasSuffix(argv[0], "regctl") {
		t.Fatalf("no regctl ExecStart in regctl-renew.service:\n%s", unit)
	}
	argv = append(argv, "--force", "--no-random-sleep")
	stop := make(chan struct{})
	loop := acmePullLoop(h, crane, d.config(t, "puller"), rootsFile, registryName+"/acme/app:1", want, 200*time.Millisecond, stop)
	var once sync.Once
	defer once.Do(func() { close(stop) })
	time.Sleep(time.Second) // the loop is pulling
	start := time.Now()
	r = h.Exec(t, freshhost.Cmd{Args: argv, Timeout: 10 * time.Minute})
	renewTook := time.Since(start)
	time.Sleep(2 * time.Second)
	once.Do(func() { close(stop) })
	res := <-loop
	t.Logf("TIMING renew: %s (%d pulls during it and 2 s after, %d failed)", renewTook.Round(time.Millisecond), res.ok+len(res.failed), len(res.failed))
	if r.Code != 0 {
		t.Fatalf("%s: exit %d\n%s", strings.Join(argv, " "), r.Code, r.Output())
	}
	if len(res.failed) > 0 {
		t.Errorf("%d of %d pulls failed during the renewal:\n%s", len(res.failed), res.ok+len(res.failed), strings.Join(res.failed, "\n"))
	}
	if res.ok < 3 {
		t.Errorf("only %d pulls succeeded during the renewal: too few to judge", res.ok)
	}
	after := checkIssued("after renew --force")
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Errorf("renew --force: nginx still serves serial %x", before.SerialNumber)
	}
}
