//go:build integration

package systest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/testenv/freshhost"
)

const (
	// scaleOutEnv runs TestScaleOutFreshHosts when it is 1: the test boots
	// two hosts and takes minutes, and is not in scripts/test.sh yet.
	scaleOutEnv = "REGCTL_TEST_SCALEOUT"
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

// TestScaleOutFreshHosts (issue 15): two registry hosts on one external
// store and one S3 bucket. Host A runs `regctl init`; host B joins it
// (the copied http secret, keys request on B, sign on A, join on B,
// `init --join`). An image pushed through A pulls through B with the
// same digest, and a user made on A works on B within the reload
// interval.
func TestScaleOutFreshHosts(t *testing.T) {
	if os.Getenv(scaleOutEnv) != "1" {
		t.Skipf("%s is not 1: the scale-out test boots two hosts (minutes); set it to run", scaleOutEnv)
	}
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

	s.storeURL = mongoStartFerretDB(t, ha, ferretdb)
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
	// Last: B is off at its end.
	t.Run("no-failed-pull", s.testNoFailedPull)
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
