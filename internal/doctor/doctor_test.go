package doctor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/provision"
	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/store/sqlite"
)

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// noChown lets the scratch render run as any user.
type noChown struct{ provision.Host }

func (noChown) Chown(string, int, int) error { return nil }

// scratch renders a complete install root into a temporary directory, as
// `regctl render` does, and gives every name a CA-issued TLS certificate
// valid for 60 more days.
func scratch(t *testing.T, mutate func(*config.Config)) *config.Config {
	t.Helper()
	c := config.Defaults()
	c.Root = filepath.Join(t.TempDir(), "root")
	c.Domains.Registry = "registry.test"
	c.Database.Backend = config.BackendSQLite
	if mutate != nil {
		mutate(&c)
	}
	h := noChown{provision.NewExecHost(c.Root, nil)}
	if _, err := provision.EnsureSecrets(h, &c, now); err != nil {
		t.Fatal(err)
	}
	s, err := provision.LoadSecrets(h, &c)
	if err != nil {
		t.Fatal(err)
	}
	files, err := render.Files(&c, s, render.Env{BinaryPath: "/usr/local/bin/regctl", Binary: []byte("regctl")})
	if err != nil {
		t.Fatal(err)
	}
	sy := &provision.Syncer{Host: h, Root: c.Root, Now: func() time.Time { return now }}
	p, err := sy.Plan(files)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sy.Apply(context.Background(), p, provision.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range c.Names() {
		writeTLS(t, &c, name, []string{name}, now.Add(60*24*time.Hour), false)
	}
	return &c
}

// writeTLS writes ROOT/certs/live/NAME/{fullchain,privkey}.pem for dnsNames,
// issued by a throwaway CA (or self-signed).
func writeTLS(t *testing.T, c *config.Config, name string, dnsNames []string, notAfter time.Time, self bool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"}, NotBefore: now.Add(-24 * time.Hour),
		NotAfter: now.Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsNames[0]}, DNSNames: dnsNames,
		NotBefore: now.Add(-24 * time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	parent, signer := ca, caKey
	if self {
		parent, signer = leaf, key
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if !self {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := filepath.Join(c.Root, filepath.FromSlash(render.LiveDir), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o700)
	mustWrite(t, filepath.Join(dir, "fullchain.pem"), chain, 0o600)
	mustWrite(t, filepath.Join(dir, "privkey.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
}

func mustWrite(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func abs(c *config.Config, rel string) string { return filepath.Join(c.Root, filepath.FromSlash(rel)) }

// fakeRunner answers commands by their first word.
type fakeRunner map[string]result

type result struct {
	out string
	err error
}

func (f fakeRunner) Query(_ context.Context, name string, args ...string) ([]byte, error) {
	r, ok := f[name]
	if !ok {
		return nil, &provision.CmdError{Args: append([]string{name}, args...), Err: &exec.Error{Name: name, Err: exec.ErrNotFound}}
	}
	return []byte(r.out), r.err
}

// cmdErr is a failed command with output, as provision.ExecHost returns it.
func cmdErr(name, output string) error {
	return &provision.CmdError{Args: []string{name}, Output: output, Err: errors.New("exit status 1")}
}

const ufwActive = `Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere                   # regctl ssh
80/tcp                     ALLOW IN    Anywhere                   # regctl http
443/tcp                    ALLOW IN    Anywhere                   # regctl https
`

const jailStatus = `Status for the jail: regctl-auth
|- Filter
|  |- Currently failed:	2
|  |- Total failed:	17
|  ` + "`" + `- File list:	/opt/regctl/logs/nginx/auth.log
` + "`" + `- Actions
   |- Currently banned:	1
   |- Total banned:	3
   ` + "`" + `- Banned IP list:	203.0.113.7
`

func healthyRunner() fakeRunner {
	return fakeRunner{
		"ufw":             {out: ufwActive},
		"fail2ban-client": {out: jailStatus},
		"docker":          {out: ""},
	}
}

// mongoLike is a store with MongoDB's optional abilities; its clock is
// the test's (clock) plus skew.
type mongoLike struct {
	store.Store
	clock    func() time.Time
	indexErr error
	skew     time.Duration
	timeErr  error
}

func (m mongoLike) CheckIndexes(context.Context) error { return m.indexErr }
func (m mongoLike) ServerTime(context.Context) (time.Time, error) {
	c := m.clock
	if c == nil {
		c = at(now)
	}
	return c().Add(m.skew), m.timeErr
}

// brokenStore fails Ping or ListRules.
type brokenStore struct {
	store.Store
	pingErr, rulesErr error
}

func (b brokenStore) Ping(context.Context) error { return b.pingErr }
func (b brokenStore) ListRules(ctx context.Context) ([]acl.Rule, error) {
	if b.rulesErr != nil {
		return nil, b.rulesErr
	}
	return b.Store.ListRules(ctx)
}

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "regctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// healthyEnv is an Env under which every check of c passes. Its store's
// clock follows the Env's Now.
func healthyEnv(t *testing.T, c *config.Config) *Env {
	st := openSQLite(t)
	e := &Env{
		Config:     c,
		ConfigPath: "/etc/regctl/regctl.yaml",
		Now:        func() time.Time { return now },
		LookupHost: func(_ context.Context, _ string) ([]string, error) {
			return []string{"192.0.2.10", "2001:db8::10"}, nil
		},
		HostAddrs: func() ([]net.IP, error) { return []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("127.0.0.1")}, nil },
		Runner:    healthyRunner(),
	}
	e.Store = func(context.Context) (store.Store, error) {
		return mongoLike{Store: nopClose{st}, clock: func() time.Time { return e.Now() }}, nil
	}
	return e
}

// travel moves the doctor's clock to t and renews the TLS certificates
// for it, so that only the signing key ages.
func travel(t *testing.T, s setup, to time.Time) {
	t.Helper()
	s.env.Now = at(to)
	for _, name := range s.c.Names() {
		writeTLS(t, s.c, name, []string{name}, to.Add(60*24*time.Hour), false)
	}
}

// nopClose keeps the shared test store open when a check closes it.
type nopClose struct{ store.Store }

func (nopClose) Close(context.Context) error { return nil }

func find(fs []Finding, check string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

func dump(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %-15s %-5s %s | %s\n", f.Check, f.Status, f.Message, f.Fix)
	}
	return b.String()
}

func TestHealthyDeployment(t *testing.T) {
	for _, backend := range []string{config.BackendSQLite, config.BackendMongo} {
		t.Run(backend, func(t *testing.T) {
			c := scratch(t, func(c *config.Config) { c.Database.Backend = backend; c.Domains.Auth = "auth.test" })
			fs := Run(context.Background(), *healthyEnv(t, c))
			for _, f := range fs {
				if f.Status != OK {
					t.Errorf("%s: %s %s (fix: %s)", f.Check, f.Status, f.Message, f.Fix)
				}
				if f.Fix != "" {
					t.Errorf("%s: OK with a fix %q", f.Check, f.Fix)
				}
			}
			for _, check := range []string{CheckDNS, CheckTLS, CheckSigningKeys, CheckSigningExpiry, CheckSigningBundle, CheckTokenConfig,
				CheckStore, CheckIndexes, CheckClock, CheckModes, CheckPorts, CheckUFW, CheckFail2ban} {
				if len(find(fs, check)) == 0 {
					t.Errorf("no %s finding", check)
				}
			}
			if n := len(find(fs, CheckTLS)); n != 2 {
				t.Errorf("%d tls-cert findings for two names", n)
			}
			if Failed(fs) {
				t.Error("Failed on a healthy deployment")
			}
			if !strings.Contains(find(fs, CheckFail2ban)[0].Message, "(1 banned)") {
				t.Errorf("fail2ban: %s", find(fs, CheckFail2ban)[0].Message)
			}
			if t.Failed() {
				t.Log("\n" + dump(fs))
			}
		})
	}
}

type setup struct {
	c   *config.Config
	env *Env
}

func TestChecks(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*config.Config) // before rendering
		breakFn func(t *testing.T, s setup)
		check   string
		want    Status
		msg     []string // in the message
		fix     string   // in the fix
		fails   bool     // another finding is an error too
	}{
		// dns
		{name: "name does not resolve", check: CheckDNS, want: Error, msg: []string{"registry.test does not resolve", "no such host"}, fix: "A (and AAAA) record",
			breakFn: func(_ *testing.T, s setup) {
				s.env.LookupHost = func(context.Context, string) ([]string, error) {
					return nil, &net.DNSError{Err: "no such host", Name: "registry.test", IsNotFound: true}
				}
			}},
		{name: "name resolves elsewhere", check: CheckDNS, want: Warn, msg: []string{"198.51.100.1, not an address of this host"}, fix: "NAT",
			breakFn: func(_ *testing.T, s setup) {
				s.env.LookupHost = func(context.Context, string) ([]string, error) { return []string{"198.51.100.1"}, nil }
			}},
		// tls
		{name: "no certificate", check: CheckTLS, want: Error, msg: []string{"no certificate for registry.test"}, fix: "regctl certs obtain registry.test --config /etc/regctl/regctl.yaml",
			breakFn: func(_ *testing.T, s setup) { os.Remove(abs(s.c, render.CertFile("registry.test"))) }},
		{name: "corrupt certificate", check: CheckTLS, want: Error, msg: []string{render.CertFile("registry.test"), "no PEM certificate"},
			breakFn: func(t *testing.T, s setup) {
				mustWrite(t, abs(s.c, render.CertFile("registry.test")), []byte("garbage"), 0o600)
			}},
		{name: "certificate expired", check: CheckTLS, want: Error, msg: []string{"expired on"}, fix: "regctl certs renew",
			breakFn: func(t *testing.T, s setup) {
				writeTLS(t, s.c, "registry.test", []string{"registry.test"}, now.Add(-time.Hour), false)
			}},
		{name: "certificate expires in 10 days", check: CheckTLS, want: Warn, msg: []string{"in 10 days", "overdue"}, fix: "regctl certs status",
			breakFn: func(t *testing.T, s setup) {
				writeTLS(t, s.c, "registry.test", []string{"registry.test"}, now.Add(10*24*time.Hour+time.Hour), false)
			}},
		{name: "certificate for another name", check: CheckTLS, want: Error, msg: []string{"does not cover registry.test", "other.test"},
			breakFn: func(t *testing.T, s setup) {
				writeTLS(t, s.c, "registry.test", []string{"other.test"}, now.Add(60*24*time.Hour), false)
			}},
		{name: "self-signed certificate", check: CheckTLS, want: Warn, msg: []string{"self-signed"}, fix: "regctl certs obtain",
			breakFn: func(t *testing.T, s setup) {
				writeTLS(t, s.c, "registry.test", []string{"registry.test"}, now.Add(60*24*time.Hour), true)
			}},
		// signing key
		{name: "signing certificate expires in 20 days", check: CheckSigningExpiry, want: Warn, msg: []string{"in 20 days"}, fix: "regctl keys rotate --dir ",
			breakFn: func(t *testing.T, s setup) { travel(t, s, now.Add(keys.SigningValidity-20*24*time.Hour-time.Minute)) }},
		{name: "signing certificate expired", check: CheckSigningExpiry, want: Error, msg: []string{"expired on", "rejects every token"}, fix: "regctl keys rotate",
			breakFn: func(t *testing.T, s setup) { travel(t, s, now.Add(keys.SigningValidity+time.Hour)) }},
		{name: "expired but otherwise sound keys load", check: CheckSigningKeys, want: OK, fails: true,
			breakFn: func(t *testing.T, s setup) { travel(t, s, now.Add(keys.SigningValidity+time.Hour)) }},
		{name: "truncated signing key", check: CheckSigningKeys, want: Error, msg: []string{"keys/signing.key"}, fix: "keys rotate",
			breakFn: func(t *testing.T, s setup) {
				p := abs(s.c, "keys/signing.key")
				b, _ := os.ReadFile(p)
				mustWrite(t, p, b[:len(b)/2], 0o600)
			}},
		{name: "signing key readable by others", check: CheckSigningKeys, want: Error, msg: []string{"mode 0644"}, fix: "chmod 600 ",
			breakFn: func(_ *testing.T, s setup) { os.Chmod(abs(s.c, "keys/signing.key"), 0o644) }},
		{name: "rotated keys", check: CheckSigningKeys, want: OK, msg: []string{"previous key kept in signing.prev.crt"},
			breakFn: func(t *testing.T, s setup) {
				if _, err := keys.Rotate(abs(s.c, render.KeysDir), now); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "registry trusts another CA", check: CheckSigningBundle, want: Error, msg: []string{"does not chain to", render.RegistryBundleFile}, fix: "restart registry",
			breakFn: func(t *testing.T, s setup) {
				other := filepath.Join(t.TempDir(), "k")
				if err := keys.Generate(other, keys.ES256, now); err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(filepath.Join(other, keys.BundleFile))
				mustWrite(t, abs(s.c, render.RegistryBundleFile), b, 0o644)
			}},
		{name: "registry bundle is not PEM", check: CheckSigningBundle, want: Error, msg: []string{render.RegistryBundleFile, "no PEM certificate"},
			breakFn: func(t *testing.T, s setup) { mustWrite(t, abs(s.c, render.RegistryBundleFile), []byte("{}"), 0o644) }},
		{name: "registry bundle missing", check: CheckSigningBundle, want: Warn, msg: []string{"keys/bundle.pem", "is missing"}, fix: "regctl render",
			breakFn: func(_ *testing.T, s setup) { os.Remove(abs(s.c, render.RegistryBundleFile)) }},
		{name: "registry bundle differs but trusts the CA", check: CheckSigningBundle, want: Warn, msg: []string{"differs from"},
			breakFn: func(t *testing.T, s setup) {
				b, _ := os.ReadFile(abs(s.c, render.RegistryBundleFile))
				mustWrite(t, abs(s.c, render.RegistryBundleFile), append([]byte("# bundle\n"), b...), 0o644)
			}},
		// token config
		{name: "registry issuer edited", check: CheckTokenConfig, want: Error, msg: []string{`issuer "other" in registry/config.yml but "regctl" in token/token-server.yaml`}, fix: "restart registry regctl",
			breakFn: func(t *testing.T, s setup) {
				replaceIn(t, abs(s.c, render.RegistryConfFile), `issuer: "regctl"`, `issuer: "other"`)
			}},
		{name: "regctl.yaml changed since the render", check: CheckTokenConfig, want: Error,
			msg:     []string{`service "registry.test" in token/token-server.yaml but "registry.example" in regctl.yaml`, "realm"},
			breakFn: func(_ *testing.T, s setup) { s.c.Token.Service = "registry.example"; s.c.Domains.Registry = "new.test" }},
		{name: "token server config missing", check: CheckTokenConfig, want: Error, msg: []string{render.TokenConfFile + " is missing"},
			breakFn: func(_ *testing.T, s setup) { os.Remove(abs(s.c, render.TokenConfFile)) }},
		{name: "registry config not YAML", check: CheckTokenConfig, want: Error, msg: []string{render.RegistryConfFile, "yaml"},
			breakFn: func(t *testing.T, s setup) {
				mustWrite(t, abs(s.c, render.RegistryConfFile), []byte("auth: [\n"), 0o600)
			}},
		// store
		{name: "store cannot be opened", check: CheckStore, want: Error, msg: []string{"cannot open the store", "connection refused"}, fix: "up -d",
			breakFn: func(_ *testing.T, s setup) {
				s.env.Store = func(context.Context) (store.Store, error) {
					return nil, fmt.Errorf("%w: dial tcp: connection refused", store.ErrUnavailable)
				}
			}},
		{name: "store does not answer", check: CheckStore, want: Error, msg: []string{"does not answer"},
			breakFn: func(t *testing.T, s setup) {
				st := openSQLite(t)
				s.env.Store = func(context.Context) (store.Store, error) {
					return brokenStore{Store: st, pingErr: store.ErrUnavailable}, nil
				}
			}},
		{name: "rules do not load", check: CheckStore, want: Error, msg: []string{"rules do not load", "seq 7"},
			breakFn: func(t *testing.T, s setup) {
				st := openSQLite(t)
				s.env.Store = func(context.Context) (store.Store, error) {
					return brokenStore{Store: st, rulesErr: errors.New("rule seq 7: unknown match key \"host\"")}, nil
				}
			}},
		{name: "index missing", check: CheckIndexes, want: Error, msg: []string{"no unique index on users.username"},
			breakFn: func(t *testing.T, s setup) {
				st := openSQLite(t)
				s.env.Store = func(context.Context) (store.Store, error) {
					return mongoLike{Store: st, indexErr: errors.New("no unique index on users.username")}, nil
				}
			}},
		{name: "embedded store has no index check", check: CheckIndexes, want: Skip,
			breakFn: func(t *testing.T, s setup) {
				st := openSQLite(t)
				s.env.Store = func(context.Context) (store.Store, error) { return st, nil }
			}},
		{name: "store clock 5s ahead", check: CheckClock, want: Warn, msg: []string{"5s ahead of"}, fix: "NTP",
			breakFn: func(t *testing.T, s setup) { s.env.Store = skewed(t, 5*time.Second) }},
		{name: "store clock 3 minutes behind", check: CheckClock, want: Error, msg: []string{"3m0s behind"},
			breakFn: func(t *testing.T, s setup) { s.env.Store = skewed(t, -3*time.Minute) }},
		{name: "store clock unreadable", check: CheckClock, want: Skip, msg: []string{"cannot read the store's clock"},
			breakFn: func(t *testing.T, s setup) {
				st := openSQLite(t)
				s.env.Store = func(context.Context) (store.Store, error) {
					return mongoLike{Store: st, timeErr: errors.New("hello: unauthorized")}, nil
				}
			}},
		{name: "managed mongo through the token server", mutate: func(c *config.Config) { c.Database.Backend = config.BackendMongo },
			check: CheckStore, want: OK, msg: []string{"/readyz answers 200"},
			breakFn: func(_ *testing.T, s setup) { s.env.Store = nil }},
		{name: "managed mongo unreachable", mutate: func(c *config.Config) { c.Database.Backend = config.BackendMongo },
			check: CheckStore, want: Error, msg: []string{"http://127.0.0.1:5001/readyz", "status 503"}, fix: "logs regctl mongo",
			breakFn: func(_ *testing.T, s setup) {
				s.env.Store = nil
				s.env.Runner.(fakeRunner)["docker"] = result{err: cmdErr("docker", "error: http://127.0.0.1:5001/readyz: status 503")}
			}},
		{name: "no store to check", check: CheckStore, want: Skip, msg: []string{"pass --store"},
			breakFn: func(_ *testing.T, s setup) { s.env.Store = nil }},
		// file modes
		{name: "world-readable signing key", check: CheckModes, want: Error, msg: []string{"keys/signing.key has mode 0644"}, fix: "chmod 600 ",
			breakFn: func(_ *testing.T, s setup) { os.Chmod(abs(s.c, "keys/signing.key"), 0o644) }},
		{name: "open secrets directory", check: CheckModes, want: Error, msg: []string{"secrets has mode 0755"}, fix: "chmod 700 ",
			breakFn: func(_ *testing.T, s setup) { os.Chmod(abs(s.c, render.SecretsDir), 0o755) }},
		{name: "group-readable TLS key", check: CheckModes, want: Error, msg: []string{"privkey.pem has mode 0640"},
			breakFn: func(_ *testing.T, s setup) { os.Chmod(abs(s.c, render.CertKeyFile("registry.test")), 0o640) }},
		{name: "readable audit log", check: CheckModes, want: Error, msg: []string{"logs/regctl/audit.log has mode 0644"}, fix: "chmod 600 ",
			breakFn: func(t *testing.T, s setup) { mustWrite(t, abs(s.c, render.AuditLogFile), []byte("{}\n"), 0o644) }},
		{name: "readable registry config", check: CheckModes, want: Error, msg: []string{"registry/config.yml has mode 0644"},
			breakFn: func(_ *testing.T, s setup) { os.Chmod(abs(s.c, render.RegistryConfFile), 0o644) }},
		{name: "secret is a symlink", check: CheckModes, want: Error, msg: []string{"secrets/registry-http-secret is a symbolic link"},
			breakFn: func(t *testing.T, s setup) {
				p := abs(s.c, render.RegistrySecretFile)
				os.Rename(p, filepath.Join(t.TempDir(), "moved"))
				if err := os.Symlink("/etc/hostname", p); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "many open files are capped", check: CheckModes, want: Error, msg: []string{"and "},
			breakFn: func(t *testing.T, s setup) {
				for i := range 20 {
					mustWrite(t, abs(s.c, fmt.Sprintf("secrets/extra-%02d", i)), []byte("x"), 0o644)
				}
			}},
		// ports
		{name: "registry publishes a port", check: CheckPorts, want: Error, msg: []string{"registry publishes 5000:5000", "bypass ufw"}, fix: "remove the ports",
			breakFn: func(t *testing.T, s setup) {
				replaceIn(t, abs(s.c, render.ComposeFile), "\n  registry:\n", "\n  registry:\n    ports: [\"5000:5000\"]\n")
			}},
		{name: "long-form port", check: CheckPorts, want: Error, msg: []string{"regctl publishes 5001:5001"},
			breakFn: func(t *testing.T, s setup) {
				replaceIn(t, abs(s.c, render.ComposeFile), "\n  regctl:\n", "\n  regctl:\n    ports:\n      - {published: 5001, target: 5001}\n")
			}},
		{name: "host network", check: CheckPorts, want: Error, msg: []string{"registry uses the host's network"},
			breakFn: func(t *testing.T, s setup) {
				replaceIn(t, abs(s.c, render.ComposeFile), "\n  registry:\n", "\n  registry:\n    network_mode: host\n")
			}},
		{name: "compose file missing", check: CheckPorts, want: Error, msg: []string{"compose.yaml is missing"}, fix: "regctl render",
			breakFn: func(_ *testing.T, s setup) { os.Remove(abs(s.c, render.ComposeFile)) }},
		// ufw
		{name: "ufw inactive", check: CheckUFW, want: Error, msg: []string{"inactive"}, fix: "firewall/ufw.sh",
			breakFn: func(_ *testing.T, s setup) { s.env.Runner.(fakeRunner)["ufw"] = result{out: "Status: inactive\n"} }},
		{name: "ufw lacks 443", check: CheckUFW, want: Warn, msg: []string{"lacks allow 443/tcp"},
			breakFn: func(_ *testing.T, s setup) {
				s.env.Runner.(fakeRunner)["ufw"] = result{out: strings.Replace(ufwActive, "443/tcp  ", "8443/tcp ", 1)}
			}},
		{name: "ufw missing", check: CheckUFW, want: Error, msg: []string{"not installed"}, fix: "apt-get install ufw",
			breakFn: func(_ *testing.T, s setup) { delete(s.env.Runner.(fakeRunner), "ufw") }},
		{name: "ufw as non-root", check: CheckUFW, want: Warn, msg: []string{"You need to be root"}, fix: "as root",
			breakFn: func(_ *testing.T, s setup) {
				s.env.Runner.(fakeRunner)["ufw"] = result{err: cmdErr("ufw", "ERROR: You need to be root to run this script")}
			}},
		// fail2ban
		{name: "no jail", check: CheckFail2ban, want: Error, msg: []string{"no jail regctl-auth"}, fix: "/etc/fail2ban/jail.d/regctl.conf",
			breakFn: func(_ *testing.T, s setup) {
				s.env.Runner.(fakeRunner)["fail2ban-client"] = result{err: cmdErr("fail2ban-client", "2026-11-29 10:00:14,543 fail2ban [1]: ERROR   NOK: ('regctl-auth',)\nSorry but the jail 'regctl-auth' does not exist")}
			}},
		{name: "fail2ban not running", check: CheckFail2ban, want: Error, msg: []string{"Is fail2ban running?"}, fix: "systemctl enable --now fail2ban",
			breakFn: func(_ *testing.T, s setup) {
				s.env.Runner.(fakeRunner)["fail2ban-client"] = result{err: cmdErr("fail2ban-client", "2026-11-29 10:00:14,543 fail2ban                [17772]: ERROR   Failed to access socket path: /var/run/fail2ban/fail2ban.sock. Is fail2ban running?")}
			}},
		{name: "fail2ban missing", check: CheckFail2ban, want: Error, msg: []string{"not installed"}, fix: "apt-get install fail2ban",
			breakFn: func(_ *testing.T, s setup) { delete(s.env.Runner.(fakeRunner), "fail2ban-client") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := scratch(t, tt.mutate)
			env := healthyEnv(t, c)
			tt.breakFn(t, setup{c: c, env: env})
			fs := Run(context.Background(), *env)
			got := find(fs, tt.check)
			var match *Finding
			for i := range got {
				if got[i].Status == tt.want {
					match = &got[i]
				}
			}
			if match == nil {
				t.Fatalf("no %s finding with status %s:\n%s", tt.check, tt.want, dump(fs))
			}
			for _, m := range tt.msg {
				if !strings.Contains(match.Message, m) {
					t.Errorf("message %q lacks %q", match.Message, m)
				}
			}
			if !strings.Contains(match.Fix, tt.fix) {
				t.Errorf("fix %q lacks %q", match.Fix, tt.fix)
			}
			if (tt.want == Error || tt.want == Warn) && match.Fix == "" {
				t.Errorf("%s without a fix", tt.want)
			}
			if Failed(fs) != (tt.want == Error || tt.fails) {
				// Only the broken thing fails: every other check stays OK.
				t.Errorf("Failed = %v with a %s finding:\n%s", Failed(fs), tt.want, dump(fs))
			}
			if strings.Contains(match.Message, "\n") || strings.Contains(match.Fix, "\n") {
				t.Errorf("finding is not one line: %q / %q", match.Message, match.Fix)
			}
		})
	}
}

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func skewed(t *testing.T, d time.Duration) func(context.Context) (store.Store, error) {
	st := openSQLite(t)
	return func(context.Context) (store.Store, error) { return mongoLike{Store: st, skew: d}, nil }
}

func replaceIn(t *testing.T, p, old, repl string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", p, old)
	}
	fi, _ := os.Stat(p)
	mustWrite(t, p, []byte(strings.Replace(string(b), old, repl, 1)), fi.Mode().Perm())
}

// An empty root: every check says what to do, nothing panics, and the
// rendered-file checks point at regctl render.
func TestEmptyRoot(t *testing.T) {
	c := config.Defaults()
	c.Root = filepath.Join(t.TempDir(), "nothing")
	c.Domains.Registry = "registry.test"
	env := healthyEnv(t, &c)
	env.Store = nil
	fs := Run(context.Background(), *env)
	if !Failed(fs) {
		t.Fatalf("an empty root passes:\n%s", dump(fs))
	}
	for _, f := range fs {
		if f.Status == Error && f.Fix == "" {
			t.Errorf("%s: error without a fix: %s", f.Check, f.Message)
		}
	}
	for _, check := range []string{CheckTokenConfig, CheckPorts, CheckSigningKeys} {
		if got := find(fs, check); len(got) == 0 || got[0].Status != Error || !strings.Contains(got[0].Fix, "regctl render --config /etc/regctl/regctl.yaml") {
			t.Errorf("%s: %+v", check, got)
		}
	}
}

func TestStatusJSON(t *testing.T) {
	b, err := json.Marshal([]Finding{{Check: CheckUFW, Status: Warn, Message: "m", Fix: "f"}, {Check: CheckDNS, Status: OK, Message: "ok"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"check":"ufw","status":"WARN","message":"m","fix":"f"},{"check":"dns","status":"OK","message":"ok"}]`; string(b) != want {
		t.Errorf("JSON %s\nwant %s", b, want)
	}
	if n := Count([]Finding{{Status: OK}, {Status: Error}, {Status: Error}}); n[Error] != 2 || n[OK] != 1 || n[Warn] != 0 {
		t.Errorf("Count = %v", n)
	}
}
