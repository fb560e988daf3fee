//go:build integration

package systest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/testenv/freshhost"
)

const (
	// scaleOutEnvVersitygw is the path of a versitygw binary (v1.8.0):
	// the shared S3 bucket, on a posix directory.
	scaleOutEnvVersitygw = "REGCTL_TEST_VERSITYGW"
	// scaleS3Port is where versitygw listens, on the first host's outer
	// address.
	scaleS3Port = "7070"
	scaleBucket = "regctl"
	// scaleRoot is regctl's install root on both hosts (the default).
	scaleRoot = "/opt/regctl"
)

// scaleOut is two hosts of one deployment on one outside namespace
// (freshhost.Options.ShareOutside): the store (FerretDB) and the bucket
// (versitygw) run there, on a's outer address, and a client there picks
// the host it talks to with a hosts file of its own (via).
type scaleOut struct {
	a, b     *deployment
	storeURL string
	hosts    map[string]string // "a", "b", "lb": a hosts file naming registryName there
}

// TestScaleOutFreshHosts (issue 15): two registry hosts, two token
// servers each, on one external store (FerretDB on a PostgreSQL primary
// with a hot standby) and one S3 bucket (versitygw). Host A runs `regctl
// init`; host B joins it (the copied http secret, keys request on B, sign
// on A, join on B, `init --join`). An image pushed through A pulls
// through B with the same digest; a user made or disabled on A counts on
// B within the reload interval; wrong passwords spread over both hosts
// reach bcrypt no more often than the account's global limit; pulls
// through a balancer outside never fail while a token server and then
// host B die; and when the PostgreSQL primary dies and the standby is
// promoted, token requests get 503 and no wrong decision, and the store
// is back within seconds. It does not run in parallel: it measures.
func TestScaleOutFreshHosts(t *testing.T) {
	freshhost.RequireMachine(t)
	crane := testenv.Require(t, testenv.EnvCrane, "the path of a crane binary (go-containerregistry v0.22.1)")
	ferretdb := testenv.Require(t, testenv.EnvFerretDB, "the path of a ferretdb binary (v1.24.2)")
	vgw := testenv.Require(t, scaleOutEnvVersitygw, "the path of a versitygw binary (v1.8.0)")
	art := freshhost.Cache(t)

	start := time.Now()
	ha := bootRegctlHost(t, freshhost.Options{Variant: freshhost.Full})
	hb := bootRegctlHost(t, freshhost.Options{Variant: freshhost.Full, ShareOutside: ha, Subnet: freshhost.SecondSubnet})
	for _, h := range []*freshhost.Host{ha, hb} {
		h.Mirror(t, art.Images.Nginx, art.Images.Registry)
	}
	s := &scaleOut{a: newDeployment(t, ha, crane), hosts: map[string]string{}}
	b := *s.a // the same clients, image and first admin
	b.h = hb
	s.b = &b
	dir := t.TempDir()
	for name, ip := range map[string]string{"a": ha.IP.String(), "b": hb.IP.String(), "lb": ha.OuterIP.String()} {
		p := filepath.Join(dir, "hosts-"+name)
		if err := os.WriteFile(p, []byte("127.0.0.1\tlocalhost\n"+ip+"\t"+registryName+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s.hosts[name] = p
	}

	pg := scaleStartPG(t, ha, hb)
	s.storeURL = scaleStartFerretDB(t, ha, ferretdb, pg.url(hb))
	access, secret := "regctl-"+testenv.RandomHex(6), testenv.RandomHex(20)
	s3URL := scaleStartS3(t, ha, vgw, access, secret)
	extra := fmt.Sprintf(`storage:
  driver: s3
  s3:
    bucket: %s
    region: us-east-1
    endpoint: %s
    access-key: %s
    secret-key: %s
    force-path-style: true
    secure: false
token:
  replicas: 2
fail2ban:
  maxretry: 1000
`, scaleBucket, s3URL, access, secret)
	for _, d := range []*deployment{s.a, s.b} {
		d.h.WriteRegctlYAML(t, registryName, "backend: mongo\nurl: \""+s.storeURL+"\"", extra)
	}
	t.Logf("TIMING hosts, store and bucket: %s", time.Since(start).Round(time.Millisecond))

	r, took := s.a.init(t, "--self-signed")
	t.Logf("TIMING init A: %s", took.Round(time.Millisecond))
	if r.Code != 0 {
		t.Fatalf("init on A: exit %d\n%s", r.Code, r.Output())
	}
	s.join(t)

	t.Run("push-a-pull-b", s.testPushAPullB)
	t.Run("rule-change-a-on-b", s.testRuleChange)
	t.Run("brute-force", s.testBruteForce)
	// B is off at its end.
	t.Run("no-failed-pull", s.testNoFailedPull)
	t.Run("store-failover", func(t *testing.T) { s.testStoreFailover(t, pg) })
}

// scaleStartS3 starts versitygw on a posix directory in h's outside
// namespace, on OuterIP, with the bucket, and returns its endpoint URL.
// The keys go in its environment, not on its command line.
func scaleStartS3(t *testing.T, h *freshhost.Host, bin, access, secret string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, scaleBucket), 0o755); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(h.OuterIP.String(), scaleS3Port)
	p := h.StartOutside(t, "versitygw", []string{"ROOT_ACCESS_KEY=" + access, "ROOT_SECRET_KEY=" + secret},
		bin, "--port", addr, "posix", dir)
	p.WaitReady(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		c, err := h.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return "http://" + addr
}

// join makes B a host of A's deployment, as docs/scale-out.md says: A's
// http secret copied (0600, in a 0700 directory), a signing key of B's own
// under A's CA (keys request on B, sign on A, join on B with A's ca.crt
// and refresh.key), then `init --join`.
func (s *scaleOut) join(t *testing.T) {
	t.Helper()
	ha, hb := s.a.h, s.b.h
	keys := scaleRoot + "/keys"
	hb.MustRun(t, "", "install", "-d", "-m", "0700", scaleRoot+"/secrets", "/root/join")
	hb.CopyIn(t, scaleRoot+"/secrets/registry-http-secret", ha.ReadFile(t, scaleRoot+"/secrets/registry-http-secret"), 0o600)
	csr := s.b.mustRegctl(t, "", "keys", "request", "--dir", keys).Stdout
	ha.CopyIn(t, "/root/b.csr", []byte(csr), 0o644)
	crt := s.a.mustRegctl(t, "", "keys", "sign", "--dir", keys, "/root/b.csr").Stdout
	hb.CopyIn(t, "/root/join/signing.crt", []byte(crt), 0o644)
	hb.CopyIn(t, "/root/join/ca.crt", ha.ReadFile(t, keys+"/ca.crt"), 0o644)
	hb.CopyIn(t, "/root/join/refresh.key", ha.ReadFile(t, keys+"/refresh.key"), 0o600)
	s.b.mustRegctl(t, "", "keys", "join", "--dir", keys, "--cert", "/root/join/signing.crt",
		"--ca", "/root/join/ca.crt", "--refresh-key", "/root/join/refresh.key")
	hb.MustRun(t, "", "rm", "-rf", "/root/join")

	r, took := s.b.init(t, "--self-signed", "--join")
	t.Logf("TIMING init --join B: %s", took.Round(time.Millisecond))
	if r.Code != 0 {
		t.Fatalf("init --join on B: exit %d\n%s", r.Code, r.Output())
	}
	if hb.Run(t, "", "test", "-e", keys+"/ca.key").Code == 0 {
		t.Errorf("B has the CA key %s/ca.key: a joining host must not", keys)
	}
	if got, want := hb.ReadFile(t, scaleRoot+"/secrets/registry-http-secret"), ha.ReadFile(t, scaleRoot+"/secrets/registry-http-secret"); string(got) != string(want) {
		t.Errorf("B's registry http secret differs from A's after init --join")
	}
}

// crane runs crane as user through route ("a", "b" or "lb"): outside, with
// registryName resolving there (a hosts file mounted over /etc/hosts).
func (s *scaleOut) crane(t *testing.T, route, user string, args ...string) testenv.Result {
	t.Helper()
	cfg := s.a.config(t, user)
	argv := append([]string{"sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, s.hosts[route], s.a.cbin, "--insecure"}, args...)
	return s.a.h.OutsideExec(t, freshhost.Cmd{
		Args:    argv,
		Env:     []string{"DOCKER_CONFIG=" + cfg, "HOME=" + cfg},
		Timeout: 5 * time.Minute,
	})
}

// login logs user in (the docker config is the same for every route).
func (s *scaleOut) login(t *testing.T, user, pw string) {
	t.Helper()
	if r := s.a.login(t, user, pw); r.Code != 0 {
		t.Fatalf("crane auth login %s: %s", user, r.Output())
	}
}

// testPushAPullB: pushed through A, pulled whole through B, the same
// digest; the blobs are in the shared bucket, not on either host.
func (s *scaleOut) testPushAPullB(t *testing.T) {
	s.login(t, "admin", s.a.admin)
	if r := s.crane(t, "a", "admin", "push", s.a.image, registryName+"/test/app:1"); r.Code != 0 {
		t.Fatalf("push through A: exit %d\n%s", r.Code, r.Output())
	}
	ra := s.crane(t, "a", "admin", "digest", registryName+"/test/app:1")
	rb := s.crane(t, "b", "admin", "digest", registryName+"/test/app:1")
	da, db := strings.TrimSpace(ra.Stdout), strings.TrimSpace(rb.Stdout)
	if ra.Code != 0 || rb.Code != 0 || !strings.HasPrefix(da, "sha256:") || da != db {
		t.Fatalf("digest through A %q (exit %d), through B %q (exit %d), want one sha256 digest\n%s\n%s", da, ra.Code, db, rb.Code, ra.Output(), rb.Output())
	}
	tar := filepath.Join(t.TempDir(), "app.tar")
	if r := s.crane(t, "b", "admin", "pull", registryName+"/test/app:1", tar); r.Code != 0 {
		t.Fatalf("pull through B: exit %d\n%s", r.Code, r.Output())
	}
	if r := s.crane(t, "b", "admin", "push", s.a.image, registryName+"/test/app:2"); r.Code != 0 {
		t.Fatalf("push through B: exit %d\n%s", r.Code, r.Output())
	}
	if r := s.crane(t, "a", "admin", "digest", registryName+"/test/app:2"); strings.TrimSpace(r.Stdout) != da {
		t.Errorf("test/app:2 pushed through B: digest through A %q (exit %d), want %s", strings.TrimSpace(r.Stdout), r.Code, da)
	}
	for _, d := range []*deployment{s.a, s.b} {
		if r := d.h.Run(t, "", "sh", "-c", "find "+scaleRoot+"/data -type f 2>/dev/null | grep -c . || true"); strings.TrimSpace(r.Stdout) != "0" {
			t.Errorf("%s keeps registry files on disk with storage.driver s3:\n%s", d.h.Name, d.h.Run(t, "", "find", scaleRoot+"/data", "-type", "f").Stdout)
		}
	}
}

// testRuleChange: a user made on A pulls through B within the reload
// interval (5s), and a user disabled on A is refused by B as soon.
func (s *scaleOut) testRuleChange(t *testing.T) {
	pw := s.a.addUser(t, "carol", "--label", "full-access=test/*")
	made := time.Now()
	s.login(t, "carol", pw)
	ref := registryName + "/test/app:1"
	if err := testenv.Poll(60*time.Second, 250*time.Millisecond, func() error {
		if r := s.crane(t, "b", "carol", "digest", ref); r.Code != 0 {
			return fmt.Errorf("carol through B: exit %d: %s", r.Code, lastLine(r.Output()))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURE user added on A pulls through B after %s", time.Since(made).Round(100*time.Millisecond))

	s.a.mustRegctl(t, "", "user", "disable", "carol")
	disabled := time.Now()
	if err := testenv.Poll(60*time.Second, 250*time.Millisecond, func() error {
		if r := s.crane(t, "b", "carol", "digest", ref); !denied(r) {
			return fmt.Errorf("carol, disabled on A, through B: exit %d: %s", r.Code, lastLine(r.Output()))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(disabled)
	t.Logf("MEASURE user disabled on A refused through B after %s", took.Round(100*time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("B refused the user disabled on A only after %s, want within the reload interval (5s) and a poll", took)
	}

	// An ACL rule added on A, then removed there: dave has no labels or
	// grants, so only the rule lets him pull through B.
	pw = s.a.addUser(t, "dave")
	s.login(t, "dave", pw)
	if r := s.crane(t, "b", "dave", "digest", ref); !denied(r) {
		t.Fatalf("dave, with no rule yet, through B: exit %d: %s", r.Code, lastLine(r.Output()))
	}
	for _, step := range []struct {
		what    string
		argv    []string
		allowed bool
	}{
		{"rule added", []string{"acl", "add", "--seq", "5", "--account", "dave", "--name", "test/*", "--actions", "pull"}, true},
		{"rule removed", []string{"acl", "remove", "5"}, false},
	} {
		s.a.mustRegctl(t, "", step.argv...)
		changed := time.Now()
		if err := testenv.Poll(60*time.Second, 250*time.Millisecond, func() error {
			r := s.crane(t, "b", "dave", "digest", ref)
			if step.allowed && r.Code != 0 || !step.allowed && !denied(r) {
				return fmt.Errorf("dave through B after the %s on A: exit %d: %s", step.what, r.Code, lastLine(r.Output()))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		took := time.Since(changed)
		t.Logf("MEASURE %s on A in effect through B after %s", step.what, took.Round(100*time.Millisecond))
		if took > 15*time.Second {
			t.Errorf("the %s on A took effect through B only after %s, want within the reload interval (5s) and a poll", step.what, took)
		}
	}
}

// scaleStartBalancer starts nginx in the outside namespace on the first
// host's outer address, port 443: it ends TLS with a certificate of its
// own and proxies to port 443 of both hosts (TLS again, to the name the
// hosts serve), retrying an idempotent request on the other host when
// one refuses, times out or answers 502/503/504.
func (s *scaleOut) startBalancer(t *testing.T) {
	t.Helper()
	nginx := testenv.RequireBinary(t, "", "nginx", "Debian's nginx-light")
	dir := t.TempDir()
	for _, d := range []string{"tmp", "logs"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	crt, key := scaleSelfSigned(t, registryName)
	if err := os.WriteFile(filepath.Join(dir, "lb.crt"), crt, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lb.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(s.a.h.OuterIP.String(), "443")
	conf := fmt.Sprintf(`daemon off;
user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 512; }
http {
  access_log %[1]s/logs/access.log;
  client_body_temp_path %[1]s/tmp/body;
  proxy_temp_path %[1]s/tmp/proxy;
  fastcgi_temp_path %[1]s/tmp/fastcgi;
  uwsgi_temp_path %[1]s/tmp/uwsgi;
  scgi_temp_path %[1]s/tmp/scgi;
  upstream hosts {
    server %[2]s:443 max_fails=1 fail_timeout=10s;
    server %[3]s:443 max_fails=1 fail_timeout=10s;
    keepalive 16;
  }
  server {
    listen %[4]s ssl;
    server_name %[5]s;
    ssl_certificate %[1]s/lb.crt;
    ssl_certificate_key %[1]s/lb.key;
    client_max_body_size 0;
    location / {
      proxy_pass https://hosts;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_ssl_server_name on;
      # nginx 1.22 offers no TLS 1.3 upstream by default.
      proxy_ssl_protocols TLSv1.2 TLSv1.3;
      proxy_ssl_name %[5]s;
      proxy_next_upstream error timeout http_502 http_503 http_504;
      proxy_next_upstream_tries 2;
      proxy_connect_timeout 2s;
      proxy_read_timeout 60s;
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`, dir, s.a.h.IP, s.b.h.IP, addr, registryName)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := s.a.h.StartOutside(t, "balancer", nil, nginx, "-c", confPath, "-p", dir)
	p.WaitReady(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		c, err := s.a.h.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

type scalePulls struct {
	ok     int
	failed []string
}

// pullLoop pulls ref whole (manifest and blobs, crane pull) through the
// balancer as user, one after another every interval until stop is
// closed, and reports; a pull whose digest is not want fails too.
func (s *scaleOut) pullLoop(user, ref, want string, interval time.Duration, stop <-chan struct{}) <-chan scalePulls {
	done := make(chan scalePulls, 1)
	cfg := filepath.Join(s.a.cfgs, user)
	tmp, _ := os.MkdirTemp("", "scale-pulls-")
	go func() {
		defer os.RemoveAll(tmp)
		var res scalePulls
		for i := 0; ; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			tar := filepath.Join(tmp, "pull.tar")
			script := `mount --bind "$0" /etc/hosts && "$@" && exec "$1" --insecure digest "$4"`
			cmd := exec.CommandContext(ctx, "ip", "netns", "exec", s.a.h.Netns, "sh", "-c", script, s.hosts["lb"],
				s.a.cbin, "--insecure", "pull", ref, tar)
			cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg, "HOME="+cfg)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			cancel()
			got := strings.TrimSpace(string(out))
			switch {
			case err != nil:
				res.failed = append(res.failed, fmt.Sprintf("%s (+%s): %v: %s", start.Format("15:04:05.000"), time.Since(start).Round(time.Millisecond), err, lastLine(got)))
			case lastLine(got) != want:
				res.failed = append(res.failed, fmt.Sprintf("%s: digest %q, want %q", start.Format("15:04:05.000"), lastLine(got), want))
			default:
				res.ok++
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

// testNoFailedPull: pulls through the balancer go on while A loses a
// token server (docker kill) and then B goes down whole: none fails.
func (s *scaleOut) testNoFailedPull(t *testing.T) {
	s.startBalancer(t)
	ref := registryName + "/test/app:1"
	want := strings.TrimSpace(s.crane(t, "a", "admin", "digest", ref).Stdout)
	if r := s.crane(t, "lb", "admin", "digest", ref); strings.TrimSpace(r.Stdout) != want {
		t.Fatalf("digest through the balancer: %q (exit %d), want %s\n%s", strings.TrimSpace(r.Stdout), r.Code, want, r.Output())
	}
	stop := make(chan struct{})
	results := s.pullLoop("admin", ref, want, 100*time.Millisecond, stop)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-results
		}
	}()
	time.Sleep(10 * time.Second)

	r := s.a.h.MustRun(t, "", "sh", "-c", "docker ps -q --filter label=com.docker.compose.service=regctl")
	id := strings.TrimSpace(r.Stdout)
	if id == "" {
		t.Fatalf("A runs no container of the compose service regctl")
	}
	s.a.h.MustRun(t, "", "docker", "kill", id)
	t.Logf("MEASURE killed A's token server regctl (%s) at %s", id, time.Now().Format("15:04:05.000"))
	time.Sleep(15 * time.Second)

	t.Logf("MEASURE powering B off at %s", time.Now().Format("15:04:05.000"))
	s.b.h.PowerOff(t)
	t.Logf("MEASURE B is off at %s", time.Now().Format("15:04:05.000"))
	time.Sleep(20 * time.Second)
	close(stop)
	res := <-results
	t.Logf("MEASURE pulls through the balancer: %d ok, %d failed", res.ok, len(res.failed))
	if len(res.failed) > 0 {
		t.Errorf("%d of %d pulls failed:\n%s", len(res.failed), res.ok+len(res.failed), strings.Join(res.failed, "\n"))
	}
	if res.ok < 10 {
		t.Errorf("only %d pulls in 45s", res.ok)
	}

	// A's killed token server comes back (docker start, as an operator or
	// a restart would), for what follows.
	s.a.h.MustRun(t, "", "docker", "start", id)
	if err := testenv.Poll(60*time.Second, 500*time.Millisecond, func() error {
		r := s.a.h.Run(t, "", "docker", "inspect", "-f", "{{.State.Health.Status}}", id)
		if got := strings.TrimSpace(r.Stdout); got != "healthy" {
			return fmt.Errorf("A's token server %s: %s", id, got)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// scaleSelfSigned returns a self-signed certificate for name and its key,
// PEM: the balancer's.
func scaleSelfSigned(t *testing.T, name string) (crt, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// Brute force: scaleAttackers addresses on each host's link, each
// sending scaleAttempts wrong passwords for one account to its host,
// all at once.
const (
	scaleAttackers = 6
	scaleAttempts  = 30
)

// testBruteForce: wrong passwords for one account from many addresses,
// spread over both hosts (and their two token servers each), reach bcrypt
// no more often than the account's global limit allows (the default,
// 20/min with a burst of 60), plus the slack sharedlimit.go names: the
// attempts that reached bcrypt are the audit records "wrong password" of
// that account, on both hosts.
func (s *scaleOut) testBruteForce(t *testing.T) {
	const victim = "victim"
	s.a.addUser(t, victim, "--label", "full-access=test/*")
	type result struct {
		codes map[int]int
		errs  int
	}
	results := make(chan result, 2*scaleAttackers)
	start := time.Now()
	n := 0
	for _, d := range []*deployment{s.a, s.b} {
		h := d.h
		local := h.OuterIP
		for range scaleAttackers {
			local = local.Next()
			h.MustOutside(t, "", "ip", "addr", "add", local.String()+"/"+strconv.Itoa(h.Prefix.Bits()), "dev", h.OuterIface)
			n++
			go func(local netip.Addr) {
				c := guardClient(h, local)
				res := result{codes: map[int]int{}}
				u := "https://" + registryName + "/auth/token?service=" + registryName + "&scope=repository:test/app:pull"
				for i := range scaleAttempts {
					code, err := guardGet(context.Background(), c, u, victim, fmt.Sprintf("wrong-%d", i))
					if err != nil {
						res.errs++
						continue
					}
					res.codes[code]++
				}
				results <- res
			}(local)
		}
	}
	codes := map[int]int{}
	errs := 0
	for range n {
		r := <-results
		for c, k := range r.codes {
			codes[c] += k
		}
		errs += r.errs
	}
	elapsed := time.Since(start)

	bcrypts := 0
	for _, d := range []*deployment{s.a, s.b} {
		// The audit writer flushes when its queue runs empty.
		time.Sleep(time.Second)
		r := d.h.MustRun(t, "", "sh", "-c", `cat `+scaleRoot+`/logs/regctl/audit.log* 2>/dev/null | grep -F '"user":"`+victim+`"' | grep -cF '"reason":"wrong password"' || true`)
		k, err := strconv.Atoi(strings.TrimSpace(r.Stdout))
		if err != nil {
			t.Fatalf("%s: count of wrong passwords: %q", d.h.Name, r.Stdout)
		}
		t.Logf("MEASURE %s: %d attempts for %s reached bcrypt", d.h.Name, k, victim)
		bcrypts += k
	}
	// The account's bucket: a burst of 60, then 20/min; slack: each
	// server (4) lets one clean client probe.
	limit := 60 + int(elapsed.Minutes()*20) + 1
	t.Logf("MEASURE brute force: %d attempts from %d addresses over 2 hosts in %s: statuses %v, %d connection errors; %d reached bcrypt (account limit %d, +4 probes)",
		n*scaleAttempts, n, elapsed.Round(100*time.Millisecond), codes, errs, bcrypts, limit)
	if bcrypts > limit+4 {
		t.Errorf("%d wrong passwords reached bcrypt, want at most the account's global limit %d (+4)", bcrypts, limit)
	}
	if bcrypts < 20 {
		t.Errorf("only %d wrong passwords reached bcrypt: the attack did not get through to the limit", bcrypts)
	}
}

// scalePGBins is where Debian's postgresql package puts each major
// version's programs.
const scalePGBins = "/usr/lib/postgresql/*/bin"

// scalePG is the store's PostgreSQL: a primary on the first host's outer
// address and a hot standby (streaming replication) on the second's, both
// on port 5432, in the outside namespace, run as the postgres user.
type scalePG struct {
	bin              string // the programs' directory
	h                *freshhost.Host
	primary, standby *testenv.Proc
	standbyDir       string
}

// scaleAsPostgres is argv run as the postgres user (setpriv execs it:
// signals reach it directly).
func scaleAsPostgres(argv ...string) []string {
	return append([]string{"setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"}, argv...)
}

// scaleStartPG starts the primary and the standby, and the database
// FerretDB uses.
func scaleStartPG(t *testing.T, a, b *freshhost.Host) *scalePG {
	t.Helper()
	dirs, _ := filepath.Glob(scalePGBins)
	slices.SortFunc(dirs, func(a, b string) int { // the newest major version
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	if len(dirs) == 0 {
		t.Fatalf("no %s: the scale-out test needs Debian's postgresql (scripts/test-deps.sh installs it)", scalePGBins)
	}
	bin := dirs[0]
	for _, name := range []string{"postgres", "initdb", "pg_basebackup", "pg_ctl", "createdb"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			t.Fatalf("%v: the scale-out test needs Debian's postgresql", err)
		}
	}
	root, err := os.MkdirTemp("", "scale-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	pg := &scalePG{bin: bin, h: a, standbyDir: filepath.Join(root, "standby")}
	primaryDir := filepath.Join(root, "primary")
	for _, d := range []string{primaryDir, pg.standbyDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		mustRunHere(t, "chown", "postgres:postgres", d)
	}
	mustRunHere(t, scaleAsPostgres(filepath.Join(bin, "initdb"), "-D", primaryDir, "-U", "postgres", "--auth=trust", "-N")...)
	conf := fmt.Sprintf(`
listen_addresses = '%s'
port = 5432
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 4
hot_standby = on
fsync = off
`, a.OuterIP)
	appendFile(t, filepath.Join(primaryDir, "postgresql.conf"), conf)
	// Trust, in a namespace of the test's own with nothing else in it.
	appendFile(t, filepath.Join(primaryDir, "pg_hba.conf"), "host all all 0.0.0.0/0 trust\nhost replication all 0.0.0.0/0 trust\n")

	start := func(name, dir string, ip netip.Addr) *testenv.Proc {
		argv := scaleAsPostgres(filepath.Join(bin, "postgres"), "-D", dir, "-c", "listen_addresses="+ip.String())
		p := a.StartOutside(t, name, nil, argv[0], argv[1:]...)
		p.WaitReady(t, 60*time.Second, func() error {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			c, err := a.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), "5432"))
			if err != nil {
				return err
			}
			return c.Close()
		})
		return p
	}
	pg.primary = start("pg-primary", primaryDir, a.OuterIP)
	a.MustOutside(t, "", scaleAsPostgres(filepath.Join(bin, "pg_basebackup"), "-h", a.OuterIP.String(), "-U", "postgres",
		"-D", pg.standbyDir, "-R", "-X", "stream", "--no-sync")...)
	pg.standby = start("pg-standby", pg.standbyDir, b.OuterIP)
	a.MustOutside(t, "", scaleAsPostgres(filepath.Join(bin, "createdb"), "-h", a.OuterIP.String(), "-U", "postgres", "ferretdb")...)
	return pg
}

// url is the PostgreSQL URL FerretDB uses: both servers, the writable one.
func (pg *scalePG) url(b *freshhost.Host) string {
	return fmt.Sprintf("postgres://postgres@%s,%s/ferretdb?target_session_attrs=read-write", pg.h.OuterIP, b.OuterIP)
}

// scaleStartFerretDB starts FerretDB on PostgreSQL (pgURL) in h's outside
// namespace, on OuterIP, and returns the store URL regctl.yaml names.
func scaleStartFerretDB(t *testing.T, h *freshhost.Host, bin, pgURL string) string {
	t.Helper()
	return startOutsideFerretDB(t, h, "ferretdb-pg", bin, t.TempDir(), "--handler=postgresql", "--postgresql-url="+pgURL)
}

func mustRunHere(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// scaleDecision is one token request of the failover loop.
type scaleDecision struct {
	at      time.Time
	kind    string // "good" (test/app, granted), "wrong" (a wrong password), "outside" (prod/app, not granted)
	status  int
	granted bool // the token grants the scope's pull
	err     error
}

// unavailable: a status that is no decision (the store or the token
// servers are unavailable).
func unavailable(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// tokenGrants reports whether the token in a token response grants pull.
func tokenGrants(body []byte) bool {
	var resp struct {
		Token string `json:"token"`
	}
	if json.Unmarshal(body, &resp) != nil {
		return false
	}
	parts := strings.Split(resp.Token, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var claims struct {
		Access []struct {
			Actions []string `json:"actions"`
		} `json:"access"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return false
	}
	for _, a := range claims.Access {
		if slices.Contains(a.Actions, "pull") {
			return true
		}
	}
	return false
}

// testStoreFailover: the store's PostgreSQL primary dies (SIGKILL), the
// hot standby is promoted (pg_ctl promote) 5s later, while token
// requests go to A: a correct password gets its token or 503, a wrong one
// 401/429 or 503, a scope outside the grant never a grant; after the
// promotion, decisions come back within seconds.
func (s *scaleOut) testStoreFailover(t *testing.T, pg *scalePG) {
	h := s.a.h
	pw := s.a.addUser(t, "fo", "--label", "full-access=test/*")
	// Wrong passwords from addresses of their own (the per-client limit
	// must not touch the correct ones), one a second.
	var wrongFrom []netip.Addr
	local := h.OuterIP
	for range 2*scaleAttackers + 1 {
		local = local.Next() // past the brute force's
	}
	for range 10 {
		local = local.Next()
		h.MustOutside(t, "", "ip", "addr", "add", local.String()+"/"+strconv.Itoa(h.Prefix.Bits()), "dev", h.OuterIface)
		wrongFrom = append(wrongFrom, local)
	}
	base := "https://" + registryName + "/auth/token?service=" + registryName + "&scope=repository:"
	get := func(c *http.Client, kind, user, pw, repo string) scaleDecision {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d := scaleDecision{at: time.Now(), kind: kind}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+repo+":pull", nil)
		req.SetBasicAuth(user, pw)
		resp, err := c.Do(req)
		if err != nil {
			d.err = err
			return d
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d.status, d.granted = resp.StatusCode, resp.StatusCode == http.StatusOK && tokenGrants(body)
		return d
	}
	good := guardClient(h, h.OuterIP)
	if err := testenv.Poll(60*time.Second, 500*time.Millisecond, func() error {
		if d := get(good, "good", "fo", pw, "test/app"); !d.granted {
			return fmt.Errorf("fo on A: status %d, err %w", d.status, d.err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	decisions := make(chan scaleDecision, 64)
	go func() {
		defer close(decisions)
		for i := 0; ; i++ {
			decisions <- get(good, "good", "fo", pw, "test/app")
			decisions <- get(good, "outside", "fo", pw, "prod/app")
			if i%2 == 0 { // below the account's limit (60 at once, 20/min): a limited account refuses its correct password too
				decisions <- get(guardClient(h, wrongFrom[(i/2)%len(wrongFrom)]), "wrong", "fo", "wrong-"+strconv.Itoa(i), "test/app")
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	// The primary dies 3s in and the standby is promoted 10s later; the
	// loop ends 5s after the store answers again (a wrong password
	// refused after the last 503), or 60s after the promotion.
	var (
		ds                               []scaleDecision
		killed, promoted                 time.Time
		first503, last503, back, endedAt time.Time
	)
	began := time.Now()
	for d := range decisions {
		ds = append(ds, d)
		now := time.Now()
		switch {
		case killed.IsZero() && now.Sub(began) > 3*time.Second:
			killed = time.Now()
			if err := syscall.Kill(pg.primary.PID(), syscall.SIGKILL); err != nil {
				t.Fatalf("kill the primary: %v", err)
			}
			t.Logf("MEASURE killed the PostgreSQL primary at %s", killed.Format("15:04:05.000"))
		case !killed.IsZero() && promoted.IsZero() && now.Sub(killed) > 10*time.Second:
			promoted = time.Now()
			h.MustOutside(t, "", scaleAsPostgres(filepath.Join(pg.bin, "pg_ctl"), "promote", "-w", "-D", pg.standbyDir)...)
			t.Logf("MEASURE promoted the standby at %s (pg_ctl returned after %s)", promoted.Format("15:04:05.000"), time.Since(promoted).Round(time.Millisecond))
		}
		if unavailable(d.status) && !killed.IsZero() && d.at.After(killed) {
			if first503.IsZero() {
				first503 = d.at
			}
			last503 = d.at
		}
		if !promoted.IsZero() && back.IsZero() && d.kind == "wrong" && d.at.After(promoted) && d.at.After(last503) &&
			(d.status == http.StatusUnauthorized || d.status == http.StatusTooManyRequests) {
			back = d.at
		}
		if endedAt.IsZero() && ((!back.IsZero() && now.Sub(back) > 5*time.Second) || (!promoted.IsZero() && now.Sub(promoted) > 60*time.Second)) {
			endedAt = now
			close(stop)
		}
	}

	var wrong []string
	counts := map[string]map[int]int{}
	for _, d := range ds {
		if counts[d.kind] == nil {
			counts[d.kind] = map[int]int{}
		}
		counts[d.kind][d.status]++
		bad := ""
		switch {
		case d.err != nil:
			t.Logf("%s %s: no answer: %v", d.at.Format("15:04:05.000"), d.kind, d.err)
		case d.status == http.StatusInternalServerError:
			// No decision either, but not the 503 a store outage should
			// give: reported below.
		case d.kind == "good" && d.status != http.StatusOK && !unavailable(d.status):
			bad = "refused a correct password"
		case d.kind == "good" && d.status == http.StatusOK && !d.granted:
			bad = "a token without the granted pull"
		case d.kind == "wrong" && d.status == http.StatusOK:
			bad = "a token for a wrong password"
		case d.kind == "outside" && d.granted:
			bad = "granted a scope outside the user's grant"
		}
		if bad != "" {
			wrong = append(wrong, fmt.Sprintf("%s %s: status %d: %s", d.at.Format("15:04:05.000"), d.kind, d.status, bad))
		}
	}
	t.Logf("MEASURE failover decisions: %v (status 0: no answer)", counts)
	if len(wrong) > 0 {
		t.Errorf("%d wrong decisions during the failover:\n%s", len(wrong), strings.Join(wrong, "\n"))
	}
	if first503.IsZero() {
		t.Errorf("no 5xx after the primary died: a wrong password was decided without the store")
	} else {
		t.Logf("MEASURE first 5xx %s after the kill", first503.Sub(killed).Round(100*time.Millisecond))
	}
	// The token servers answer 503, and the host's nginx passes it on:
	// with both replicas left out after their 503s (max_fails=1) it asks
	// its backup entries for them, rather than answering 502 "no live
	// upstreams" (cached logins included) until fail_timeout passes.
	if n := counts["good"][http.StatusBadGateway] + counts["wrong"][http.StatusBadGateway]; n > 0 {
		t.Errorf("%d token requests got 502 from the host's nginx during the outage, want the token servers' 503", n)
	}
	// While its PostgreSQL pool has no writable server, FerretDB answers
	// commands with InternalError, a server's error rather than a network
	// one: the store takes it for unavailability (503), as it does a
	// MongoDB primary stepping down. Any 500 is a store error it does not.
	if n := counts["good"][http.StatusInternalServerError] + counts["outside"][http.StatusInternalServerError] + counts["wrong"][http.StatusInternalServerError]; n > 0 {
		r := h.Run(t, "", "sh", "-c", `grep -hF '"status":500' `+scaleRoot+`/logs/regctl/audit.log* | tail -n 3`)
		t.Errorf("%d token requests got 500, not 503, during the store outage; the audit log says:\n%s", n, r.Stdout)
	}
	if back.IsZero() {
		t.Errorf("the store did not come back within 60s of the promotion")
	} else {
		t.Logf("MEASURE recovery: the store decides again %s after the promotion (last 5xx %s after it); outage %s from the kill",
			back.Sub(promoted).Round(100*time.Millisecond), last503.Sub(promoted).Round(100*time.Millisecond), back.Sub(killed).Round(100*time.Millisecond))
	}
}
