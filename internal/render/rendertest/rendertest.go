// Package rendertest runs what `regctl render` produces, for real: nginx
// from the rendered nginx.conf, terminating TLS on loopback ports, in
// front of a distribution registry from the rendered config.yml and a
// `regctl serve`. It serves the render package's own tests and the interop
// matrix (internal/interop). It is imported only by tests.
package rendertest

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/certs/certstest"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/provision"
	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/internal/testenv"
)

// Site is a rendered nginx configuration pointed at a temporary
// directory, loopback ports and test certificates.
type Site struct {
	Dir                string
	Conf               string // nginx.conf
	Data               render.NginxData
	HTTP, HTTPS, Probe int // the 127.0.0.1 ports of port 80's, 443's and the health listener
	Roots              *x509.CertPool
}

// NewSite renders nginx.conf for c with every path below a fresh
// temporary directory, the listeners on free 127.0.0.1 ports and the
// upstreams at registry and tokens (HOST:PORT, one per token server
// replica). The certificates for c's
// names are issued by ca, or self-signed if ca is nil; Roots holds what
// they chain to.
func NewSite(t testing.TB, c *config.Config, registry string, tokens []string, ca *certstest.CA) *Site {
	t.Helper()
	dir := t.TempDir()
	// nginx's workers run as an unprivileged user and serve the webroot.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &Site{Dir: dir, Roots: x509.NewCertPool(),
		HTTP: testenv.FreePort(t), HTTPS: testenv.FreePort(t), Probe: testenv.FreePort(t)}
	d := render.NewNginxData(c)
	d.PidFile = filepath.Join(dir, "nginx.pid")
	d.ErrorLog = filepath.Join(dir, "error.log")
	d.AccessLog = filepath.Join(dir, "access.log")
	d.AuthLog = filepath.Join(dir, "auth.log")
	d.TempDir = filepath.Join(dir, "tmp")
	d.WebRoot = filepath.Join(dir, "acme-webroot")
	d.HTTPListen = []string{fmt.Sprintf("127.0.0.1:%d", s.HTTP)}
	d.HTTPSListen = []string{fmt.Sprintf("127.0.0.1:%d", s.HTTPS)}
	d.HealthListen = fmt.Sprintf("127.0.0.1:%d", s.Probe)
	d.RegistryUpstream, d.TokenUpstreams = registry, tokens
	d.HTTP2On = render.NginxHasHTTP2Directive(NginxVersion(t))
	if d.DHParam != "" {
		d.DHParam = filepath.Join(dir, "dhparams.pem")
		WriteFile(t, d.DHParam, provision.FFDHE2048(), 0o644)
	}
	if ca != nil {
		s.Roots = ca.Pool()
	}
	for i := range d.Servers {
		srv := &d.Servers[i]
		var certPEM, keyPEM []byte
		if ca != nil {
			b := ca.Issue([]string{srv.Name}, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
			certPEM, keyPEM = b.Fullchain, b.PrivateKey
		} else {
			var err error
			if certPEM, keyPEM, err = provision.SelfSigned([]string{srv.Name}, time.Now(), time.Hour); err != nil {
				t.Fatal(err)
			}
			s.Roots.AppendCertsFromPEM(certPEM)
		}
		srv.Cert = filepath.Join(dir, "certs", srv.Name, "fullchain.pem")
		srv.Key = filepath.Join(dir, "certs", srv.Name, "privkey.pem")
		WriteFile(t, srv.Cert, certPEM, 0o644)
		WriteFile(t, srv.Key, keyPEM, 0o600)
	}
	for _, sub := range []string{"tmp", "acme-webroot/.well-known/acme-challenge"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf, err := render.Execute("nginx.conf.tmpl", d)
	if err != nil {
		t.Fatal(err)
	}
	s.Conf, s.Data = filepath.Join(dir, "nginx.conf"), d
	WriteFile(t, s.Conf, conf, 0o644)
	return s
}

// Args are nginx's arguments for the site, extra appended; they keep
// nginx away from /etc/nginx and /var/log/nginx.
func (s *Site) Args(extra ...string) []string {
	return append([]string{"-p", s.Dir, "-e", filepath.Join(s.Dir, "error.log"), "-c", s.Conf}, extra...)
}

// Start starts nginx (binary bin) in the foreground with the site and
// waits until its health listener answers.
func (s *Site) Start(t testing.TB, bin string) *testenv.Proc {
	t.Helper()
	p := testenv.Start(t, "nginx", nil, bin, s.Args("-g", "daemon off;")...)
	p.WaitReady(t, 20*time.Second, testenv.HTTPCheck(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.Probe), 200))
	return p
}

// WriteFile writes data to p with mode, making its directory.
func WriteFile(t testing.TB, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
}

// NginxBinary is nginx from PATH, or skips the test (fails it under
// REGCTL_TEST_REQUIRE=1).
func NginxBinary(t testing.TB) string {
	t.Helper()
	return testenv.RequireBinary(t, "", "nginx", "Debian's nginx (apt-get install -y nginx-light)")
}

// NginxVersion is the version of the nginx on PATH ("1.22.1").
func NginxVersion(t testing.TB) string {
	t.Helper()
	r := testenv.MustRun(t, nil, "", NginxBinary(t), "-v")
	_, v, ok := strings.Cut(strings.TrimSpace(r.Stderr), "nginx/")
	if !ok {
		t.Fatalf("nginx -v printed %q", r.Stderr)
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// StackConfig is what Start runs.
type StackConfig struct {
	Config      *config.Config // validated; Domains.Registry "localhost"
	Regctl      string         // the regctl binary (testenv.BuildRegctl)
	Store       string         // regctl's store URL
	KeysDir     string         // regctl keys generate's directory
	RegistryBin string         // a distribution registry binary
	// CA issues nginx's certificate; nil: self-signed.
	CA *certstest.CA
	// Secrets are the rendered secrets (the registry's http secret).
	Secrets render.Secrets
	// ReloadInterval is regctl serve's --reload-interval; 0: a second.
	ReloadInterval time.Duration
	// Serve, if set, is the token server nginx proxies to (another
	// stack's, for two registries behind one regctl serve): Start starts
	// none, and the registry's service is Config's token.service, which
	// must be one of Serve's.
	Serve *Stack
}

// Stack is a running stack as `regctl render` lays it out.
type Stack struct {
	Site     *Site
	Serve    *testenv.Server
	Registry *testenv.Proc
	Nginx    *testenv.Proc
	Host     string // localhost:PORT, the name clients use (through nginx, TLS)
	// AuditLog is regctl serve's audit log (one JSON line per token
	// decision), shared with the stack it was given as StackConfig.Serve.
	AuditLog string
}

// Start starts regctl serve (unless sc.Serve gives one) with an audit
// log, the registry from the rendered config.yml (its keys from
// sc.KeysDir, its realm and host through nginx) and nginx from the
// rendered nginx.conf, all on loopback, and waits until each answers.
func Start(t testing.TB, sc StackConfig) *Stack {
	t.Helper()
	c := sc.Config
	reload := sc.ReloadInterval
	if reload == 0 {
		reload = time.Second
	}
	var serve *testenv.Server
	var audit string
	if sc.Serve != nil {
		serve, audit = sc.Serve.Serve, sc.Serve.AuditLog
	} else {
		audit = filepath.Join(t.TempDir(), "audit.log")
		serve = testenv.StartServe(t, sc.Regctl, testenv.ServeConfig{
			Issuer: c.Token.Issuer, Service: c.TokenService(), ExtraServices: c.Token.ExtraServices,
			KeysDir: sc.KeysDir, Store: sc.Store, ReloadInterval: reload, KeyFormat: c.Token.KeyFormat,
			AuditLog: audit,
		})
	}
	regPort, debugPort := testenv.FreePort(t), testenv.FreePort(t)
	site := NewSite(t, c, fmt.Sprintf("127.0.0.1:%d", regPort), []string{strings.TrimPrefix(serve.URL, "http://")}, sc.CA)
	host := fmt.Sprintf("localhost:%d", site.HTTPS)

	d := render.NewRegistryData(c, sc.Secrets)
	dir := t.TempDir()
	d.Addr = fmt.Sprintf("127.0.0.1:%d", regPort)
	d.DebugAddr = fmt.Sprintf("127.0.0.1:%d", debugPort)
	d.StorageDir = filepath.Join(dir, "storage")
	if d.RootCertBundle != "" { // "" with key-format jwks
		d.RootCertBundle = filepath.Join(sc.KeysDir, keys.BundleFile)
	}
	d.JWKS = filepath.Join(sc.KeysDir, keys.JWKSFile)
	d.Realm = "https://" + host + "/auth/token"
	d.Host = "https://" + host
	conf, err := render.Execute("registry.yml.tmpl", d)
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, filepath.Join(dir, "config.yml"), conf, 0o600)
	env := []string{"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none"}
	reg := testenv.Start(t, "registry", env, sc.RegistryBin, "serve", filepath.Join(dir, "config.yml"))
	reg.WaitReady(t, 30*time.Second, testenv.HTTPCheck(fmt.Sprintf("http://127.0.0.1:%d/debug/health", debugPort), 200))
	ng := site.Start(t, NginxBinary(t))
	return &Stack{Site: site, Serve: serve, Registry: reg, Nginx: ng, Host: host, AuditLog: audit}
}
