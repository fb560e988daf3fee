package provision

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/redact"
	"github.com/regctl/regctl/internal/render"
)

const testRoot = "/opt/regctl"

func testConfig(t testing.TB, mutate ...func(*config.Config)) *config.Config {
	t.Helper()
	c := config.Defaults()
	c.Domains.Registry = "registry.example.com"
	c.Domains.Auth = "auth.example.com"
	c.Root = testRoot
	for _, m := range mutate {
		m(&c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return &c
}

var testBinary = []byte("\x7fELF not really regctl")

// fakeUbuntu models a fresh Ubuntu host behind a RecordingHost: queries
// see what earlier commands changed.
type fakeUbuntu struct {
	t *testing.T
	h *RecordingHost
	c *config.Config

	mu        sync.Mutex
	installed map[string]bool
	ufwOn     bool
	jail      bool
	image     string
	up        bool
	subnet    string // of the compose network; "" when there is none
	timer     bool
	seeded    []string
	engine    string // docker version's Server.Version; "" is 26.1.5
}

func newFakeUbuntu(t *testing.T, c *config.Config) *fakeUbuntu {
	f := &fakeUbuntu{t: t, h: NewRecordingHost(), c: c, installed: map[string]bool{}}
	f.h.SetDir("/run/systemd/system")
	f.h.SetDir("/etc/fail2ban")
	f.h.SetDir("/etc/logrotate.d")
	f.h.Respond = f.respond
	f.h.OnRun = f.onRun
	return f
}

var errNo = errors.New("exit status 1")

func (f *fakeUbuntu) respond(cmd []string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	line := strings.Join(cmd, " ")
	switch {
	case cmd[0] == "dpkg-query":
		var b strings.Builder
		for _, p := range cmd[4:] {
			if f.installed[p] {
				fmt.Fprintf(&b, "%s install ok installed\n", p)
			}
		}
		return []byte(b.String()), nil
	case line == "docker compose version":
		if f.installed["docker-compose-v2"] || f.installed["docker-compose"] {
			return []byte("Docker Compose version 2.24.6\n"), nil
		}
	case line == "docker version --format {{.Server.Version}}":
		if f.installed["docker.io"] {
			return []byte(cmp.Or(f.engine, "26.1.5") + "\n"), nil
		}
	case line == "systemctl is-active docker":
		if f.installed["docker.io"] {
			return []byte("active\n"), nil
		}
	case line == "ufw status verbose":
		if f.ufwOn {
			return []byte(fmt.Sprintf(`Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
%d/tcp                     ALLOW IN    Anywhere                   # regctl ssh
80/tcp                     ALLOW IN    Anywhere                   # regctl http
443/tcp                    ALLOW IN    Anywhere                   # regctl https
`, f.c.SSH.Port)), nil
		}
		return []byte("Status: inactive\n"), nil
	case line == "fail2ban-client status regctl-auth":
		if f.jail {
			return []byte("Status for the jail: regctl-auth\n"), nil
		}
	case cmd[0] == "docker" && cmd[1] == "network" && cmd[2] == "inspect":
		if f.subnet != "" {
			return []byte(f.subnet + " \n"), nil
		}
	case cmd[0] == "docker" && cmd[1] == "image" && cmd[2] == "inspect":
		if f.image != "" {
			return []byte(f.image + "\n"), nil
		}
	case cmd[0] == "docker" && slices.Contains(cmd, "ps"):
		if !f.up {
			return nil, nil
		}
		var b strings.Builder
		for _, s := range f.services() {
			fmt.Fprintf(&b, `{"Service":%q,"State":"running","Health":"healthy","Labels":"com.docker.compose.project=regctl,com.docker.compose.config-hash=h-%s"}`+"\n", s, s)
		}
		return []byte(b.String()), nil
	case cmd[0] == "docker" && slices.Contains(cmd, "config"):
		var b strings.Builder
		for _, s := range f.services() {
			fmt.Fprintf(&b, "%s h-%s\n", s, s)
		}
		return []byte(b.String()), nil
	case line == "systemctl is-enabled regctl-renew.timer":
		if f.timer {
			return []byte("enabled\n"), nil
		}
	case line == "systemctl is-active regctl-renew.timer":
		if f.timer {
			return []byte("active\n"), nil
		}
	}
	return nil, &CmdError{Args: cmd, Err: errNo}
}

// services are the compose services of the fake's deployment.
func (f *fakeUbuntu) services() []string {
	tokens, _ := f.c.TokenReplicas()
	return append(append([]string{"nginx", "registry"}, tokens...), "mongo")
}

func (f *fakeUbuntu) onRun(cmd []string, stdin []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	line := strings.Join(cmd, " ")
	switch {
	case cmd[0] == "apt-get" && cmd[1] == "install":
		for _, p := range cmd[2:] {
			if !strings.HasPrefix(p, "-") {
				f.installed[p] = true
			}
		}
	case cmd[0] == "sh" && strings.HasSuffix(line, "firewall/ufw.sh"):
		f.ufwOn = true
	case line == "fail2ban-client reload":
		f.jail = true
	case strings.HasSuffix(line, "build regctl"):
		sum := sha256.Sum256(testBinary)
		f.image = hex.EncodeToString(sum[:])
	case slices.Contains(cmd, "up"):
		if f.subnet == "" {
			f.subnet = f.c.Network.Subnet
		}
		f.up = true
	case slices.Contains(cmd, "down"):
		f.up, f.subnet = false, ""
	case line == "systemctl enable --now regctl-renew.timer":
		f.timer = true
	case slices.Contains(cmd, "obtain"):
		name := cmd[len(cmd)-1]
		cert, key := caSignedCert(f.t, name)
		f.h.SetFile(filepath.Join(f.c.Root, render.CertFile(name)), cert, 0o644)
		f.h.SetFile(filepath.Join(f.c.Root, render.CertKeyFile(name)), key, 0o600)
	case slices.Contains(cmd, "exec") && slices.Contains(cmd, "/regctl"):
		f.seeded = append(f.seeded, strings.Join(cmd[slices.Index(cmd, "/regctl"):], " "))
		if len(stdin) > 0 && !bytes.Equal(stdin, []byte("s3cret-pw\n")) {
			return fmt.Errorf("stdin %q", stdin)
		}
	}
	return nil
}

// caSignedCert is a certificate for name issued by a throwaway CA, like
// one from Let's Encrypt (not self-signed).
func caSignedCert(t *testing.T, name string) (certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func initOptions(c *config.Config, out *bytes.Buffer) InitOptions {
	return InitOptions{
		Config:        c,
		Render:        render.Env{ConfigPath: "/etc/regctl/regctl.yaml", BinaryPath: "/usr/local/bin/regctl", Binary: testBinary},
		Self:          "/usr/local/bin/regctl",
		Distro:        ParseOSRelease([]byte("ID=ubuntu\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n")),
		AdminUser:     "admin",
		AdminPassword: []byte("s3cret-pw"),
		Now:           fixedNow,
		Out:           out,
	}
}

// TestInitConverges: a first run on a fresh host does every step in
// order; a second run finds everything in place and does nothing.
func TestInitConverges(t *testing.T) {
	c := testConfig(t)
	f := newFakeUbuntu(t, c)
	var out bytes.Buffer
	if err := Init(context.Background(), f.h, initOptions(c, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	actions := f.h.Actions()
	order := []string{
		"run apt-get update -q",
		"run apt-get install -y -q --no-install-recommends ufw fail2ban logrotate docker.io docker-compose-v2",
		"run sh /opt/regctl/firewall/ufw.sh",
		"write /opt/regctl/logrotate/regctl 0644",
		"write /etc/logrotate.d/regctl 0644",
		"write /etc/fail2ban/filter.d/regctl-auth.conf 0644",
		"write /etc/fail2ban/jail.d/regctl.conf 0644",
		"run fail2ban-client reload",
		"write /opt/regctl/secrets/registry-http-secret 0600",
		"chown 999:999 /opt/regctl/secrets/mongo-password",
		"write /opt/regctl/keys/signing.key 0600",
		"write /opt/regctl/certs/dhparams.pem 0644",
		"run /usr/local/bin/regctl --config /etc/regctl/regctl.yaml certs obtain --root /opt/regctl --acme-directory https://acme-v02.api.letsencrypt.org/directory registry.example.com",
		"run /usr/local/bin/regctl --config /etc/regctl/regctl.yaml certs obtain --root /opt/regctl --acme-directory https://acme-v02.api.letsencrypt.org/directory auth.example.com",
		"write /opt/regctl/nginx/nginx.conf 0644",
		"write /opt/regctl/registry/config.yml 0600",
		"write /opt/regctl/token/token-server.yaml 0600",
		"write /opt/regctl/build/regctl 0755",
		"run docker compose -f /opt/regctl/compose.yaml -p regctl build regctl",
		"run docker compose -f /opt/regctl/compose.yaml -p regctl up -d --wait --wait-timeout 600",
		"run docker compose -f /opt/regctl/compose.yaml -p regctl exec -T regctl /regctl acl defaults",
		"run docker compose -f /opt/regctl/compose.yaml -p regctl exec -T regctl /regctl user add admin --password-stdin --label full-access=* --label full-access=*/* <stdin 10 bytes>",
		"write /opt/regctl/.regctl/admin-created 0600",
		"write /etc/systemd/system/regctl-renew.timer 0644",
		"run systemctl enable --now regctl-renew.timer",
	}
	pos := 0
	for _, want := range order {
		i := slices.Index(actions[pos:], want)
		if i < 0 {
			t.Fatalf("action %q missing or out of order; actions:\n%s", want, strings.Join(actions, "\n"))
		}
		pos += i + 1
	}
	for _, a := range actions {
		if strings.Contains(a, "s3cret-pw") {
			t.Errorf("the password appears in an action: %s", a)
		}
	}
	if uid, gid := f.h.Owner(filepath.Join(testRoot, render.MongoPasswordFile)); uid != MongoUID || gid != MongoGID {
		t.Errorf("mongo password owner %d:%d", uid, gid)
	}
	if !strings.Contains(out.String(), "docker login registry.example.com -u admin") {
		t.Errorf("summary lacks the next steps:\n%s", out.String())
	}

	// The second run: checks only.
	f.h.Reset()
	out.Reset()
	o := initOptions(c, &out)
	o.AdminPassword = nil // not needed any more
	if err := Init(context.Background(), f.h, o); err != nil {
		t.Fatalf("second run: %v\n%s", err, out.String())
	}
	if a := f.h.Actions(); len(a) != 0 {
		t.Errorf("the second run changed the host:\n%s", strings.Join(a, "\n"))
	}
	if n := strings.Count(out.String(), "already in place"); n != len(Steps()) {
		t.Errorf("%d steps already in place, want %d:\n%s", n, len(Steps()), out.String())
	}
}

// TestInitInstallsLogrotate: init installs the rendered logrotate rule as
// /etc/logrotate.d/regctl, the copy below the root is tracked like every
// rendered file, and a re-run puts back a rule changed on the host without
// touching anything else (logrotate needs no reload, fail2ban none for it).
func TestInitInstallsLogrotate(t *testing.T) {
	c := testConfig(t)
	f := newFakeUbuntu(t, c)
	var out bytes.Buffer
	if err := Init(context.Background(), f.h, initOptions(c, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	files, err := render.Files(c, render.Secrets{RegistryHTTPSecret: "x", MongoPassword: "x", TokenBundle: []byte("x")}, initOptions(c, &out).Render)
	if err != nil {
		t.Fatal(err)
	}
	want := render.Find(files, render.LogrotateFile)
	for _, p := range []string{render.InstalledLogrotate, filepath.Join(testRoot, render.LogrotateFile)} {
		got, err := f.h.ReadFile(p)
		if err != nil || !bytes.Equal(got, want.Data) {
			t.Errorf("%s: %v, holds:\n%s\nwant:\n%s", p, err, got, want.Data)
		}
		if fi, err := f.h.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v, want mode 0644 (logrotate skips a rule others may write)", p, err)
		}
	}
	for _, log := range []string{render.AuthLogFile, render.AuditLogFile} {
		if !bytes.Contains(want.Data, []byte("\n"+filepath.Join(testRoot, log)+" {\n")) {
			t.Errorf("the rule does not rotate %s:\n%s", log, want.Data)
		}
	}
	manifest, err := f.h.ReadFile(filepath.Join(testRoot, render.ManifestFile))
	if err != nil || !bytes.Contains(manifest, []byte(`"`+render.LogrotateFile+`"`)) {
		t.Errorf("the manifest does not track %s (%v):\n%s", render.LogrotateFile, err, manifest)
	}

	f.h.SetFile(render.InstalledLogrotate, []byte("/opt/regctl/logs/nginx/auth.log {\n    rotate 1\n}\n"), 0o644)
	f.h.Reset()
	out.Reset()
	o := initOptions(c, &out)
	o.AdminPassword = nil
	if err := Init(context.Background(), f.h, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if a := f.h.Actions(); !slices.Equal(a, []string{"write " + render.InstalledLogrotate + " 0644"}) {
		t.Errorf("re-run actions:\n%s\nwant only the rule written", strings.Join(a, "\n"))
	}
	if got, _ := f.h.ReadFile(render.InstalledLogrotate); !bytes.Equal(got, want.Data) {
		t.Errorf("the rule was not put back:\n%s", got)
	}
}

// TestInitRerendersAndRestarts: after a configuration change, a re-run
// writes only the changed files and restarts only what reads them.
func TestInitRerendersAndRestarts(t *testing.T) {
	c := testConfig(t)
	f := newFakeUbuntu(t, c)
	var out bytes.Buffer
	if err := Init(context.Background(), f.h, initOptions(c, &out)); err != nil {
		t.Fatal(err)
	}
	f.h.Reset()
	c2 := *c
	c2.TLS.Profile = config.ProfileIntermediate
	c2.Token.Lifetime = 10 * time.Minute
	o := initOptions(&c2, &out)
	if err := Init(context.Background(), f.h, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := []string{
		"write /opt/regctl/nginx/nginx.conf 0644",
		"write /opt/regctl/token/token-server.yaml 0600",
		"run docker compose -f /opt/regctl/compose.yaml -p regctl up -d --wait --wait-timeout 600 --force-recreate regctl",
		"run docker compose -f /opt/regctl/compose.yaml -p regctl exec -T nginx nginx -s reload",
	}
	got := f.h.Actions()
	var writes []string
	for _, a := range got {
		if strings.HasPrefix(a, "write /opt/regctl/.regctl/backup/") || a == "write /opt/regctl/.regctl/manifest.json 0600" || strings.HasPrefix(a, "mkdir /opt/regctl/.regctl/backup") {
			continue
		}
		writes = append(writes, a)
	}
	if !slices.Equal(writes, want) {
		t.Errorf("actions:\n%s\nwant:\n%s", strings.Join(writes, "\n"), strings.Join(want, "\n"))
	}
}

// TestInitRollsTokenReplicas: with token.replicas 3, a token server
// change recreates the replicas one at a time, each healthy (--wait) and
// nginx told its address before the next goes, so that the others answer
// token requests meanwhile.
func TestInitRollsTokenReplicas(t *testing.T) {
	c := testConfig(t)
	c.Token.Replicas = 3
	f := newFakeUbuntu(t, c)
	var out bytes.Buffer
	if err := Init(context.Background(), f.h, initOptions(c, &out)); err != nil {
		t.Fatal(err)
	}
	f.h.Reset()
	c2 := *c
	c2.Token.Lifetime = 10 * time.Minute
	if err := Init(context.Background(), f.h, initOptions(&c2, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	const compose = "run docker compose -f /opt/regctl/compose.yaml -p regctl "
	var want []string
	for _, svc := range []string{"regctl", "regctl-2", "regctl-3"} {
		want = append(want,
			compose+"up -d --wait --wait-timeout 600 --force-recreate "+svc,
			compose+"exec -T nginx nginx -s reload")
	}
	var runs []string
	for _, a := range f.h.Actions() {
		if strings.HasPrefix(a, "run ") {
			runs = append(runs, a)
		}
	}
	if !slices.Equal(runs, want) {
		t.Errorf("runs:\n%s\nwant:\n%s", strings.Join(runs, "\n"), strings.Join(want, "\n"))
	}
}

// TestInitRecreatesTheNetwork: a deployment whose compose network has
// another subnet (rendered before network.subnet existed, or with another
// one) gets its containers and network removed and created again, so that
// nginx gets its address with any version of docker compose.
func TestInitRecreatesTheNetwork(t *testing.T) {
	c := testConfig(t)
	f := newFakeUbuntu(t, c)
	var out bytes.Buffer
	if err := Init(context.Background(), f.h, initOptions(c, &out)); err != nil {
		t.Fatal(err)
	}
	f.h.Reset()
	f.subnet = "172.18.0.0/16"
	out.Reset()
	if err := Init(context.Background(), f.h, initOptions(c, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	compose := "run docker compose -f /opt/regctl/compose.yaml -p regctl "
	want := []string{compose + "down", compose + "up -d --wait --wait-timeout 600"}
	if got := f.h.Actions(); !slices.Equal(got, want) {
		t.Errorf("actions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(out.String(), "subnet 172.18.0.0/16, not 172.31.255.0/24") {
		t.Errorf("init does not say why it recreates the containers:\n%s", out.String())
	}
	if f.subnet != c.Network.Subnet {
		t.Errorf("network subnet %q after init", f.subnet)
	}

	// Once the subnet is right, a re-run leaves the containers alone.
	f.h.Reset()
	if err := Init(context.Background(), f.h, initOptions(c, &out)); err != nil {
		t.Fatal(err)
	}
	if got := f.h.Actions(); len(got) != 0 {
		t.Errorf("a re-run acted: %v", got)
	}
	// An IPv6 pool besides is not a change of subnet.
	f.subnet = c.Network.Subnet + " fd00:1::/64"
	if err := Init(context.Background(), f.h, initOptions(c, &out)); err != nil {
		t.Fatal(err)
	}
	if got := f.h.Actions(); len(got) != 0 {
		t.Errorf("with an IPv6 pool besides, a re-run acted: %v", got)
	}
}

// TestInitStopsWithResumeHint: a failing step names itself and says how to
// carry on; nothing after it runs.
func TestInitStopsWithResumeHint(t *testing.T) {
	c := testConfig(t)
	f := newFakeUbuntu(t, c)
	f.h.OnRun = func(cmd []string, stdin []byte) error {
		if cmd[0] == "apt-get" && cmd[1] == "install" {
			return &CmdError{Args: cmd, Output: "E: Unable to locate package", Err: errNo}
		}
		return f.onRun(cmd, stdin)
	}
	var out bytes.Buffer
	err := Init(context.Background(), f.h, initOptions(c, &out))
	var se *StepError
	if !errors.As(err, &se) || se.Step != 1 {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "run `regctl init` again") || !strings.Contains(err.Error(), "Unable to locate package") {
		t.Errorf("error lacks the cause or the resume hint: %v", err)
	}
	for _, a := range f.h.Actions() {
		if strings.Contains(a, "firewall/ufw.sh") {
			t.Errorf("step 2 ran after step 1 failed: %s", a)
		}
	}
}

func TestInitSelfSignedSQLite(t *testing.T) {
	c := testConfig(t, func(c *config.Config) { c.Database.Backend = config.BackendSQLite; c.Domains.Auth = "" })
	f := newFakeUbuntu(t, c)
	var out bytes.Buffer
	o := initOptions(c, &out)
	o.SelfSigned = true
	if err := Init(context.Background(), f.h, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	a := strings.Join(f.h.Actions(), "\n")
	for _, bad := range []string{"mongo-password", "certs obtain", "/etc/systemd/system/regctl-renew"} {
		if strings.Contains(a, bad) {
			t.Errorf("self-signed sqlite run did %q:\n%s", bad, a)
		}
	}
	cert, err := f.h.ReadFile(filepath.Join(testRoot, render.CertFile("registry.example.com")))
	if err != nil {
		t.Fatal(err)
	}
	if self, err := IsSelfSigned(cert); err != nil || !self {
		t.Errorf("IsSelfSigned = %v, %v", self, err)
	}
	if fi, _ := f.h.Stat(filepath.Join(testRoot, render.CertKeyFile("registry.example.com"))); fi.Mode().Perm() != 0o600 {
		t.Errorf("privkey mode %04o", fi.Mode().Perm())
	}
	if !strings.Contains(out.String(), "clients must trust") {
		t.Errorf("summary lacks the self-signed hint:\n%s", out.String())
	}
	// Step 9 says it was skipped, and only that.
	want := "[9/9] certificate renewal schedule\n      skipped: self-signed certificates are not renewed"
	if !strings.Contains(out.String(), want) || strings.Count(out.String(), "already in place") != 0 {
		t.Errorf("step 9's lines: want %q and nothing already in place:\n%s", want, out.String())
	}
	// Every other step ends with its time.
	if n := strings.Count(out.String(), "      done in "); n != len(Steps())-1 {
		t.Errorf("%d steps done with a time, want %d:\n%s", n, len(Steps())-1, out.String())
	}
}

// TestInitDryRunChangesNothing runs init through a DryRunHost over a real
// scratch root: the plan is printed, with diffs, and nothing is written.
func TestInitDryRunChangesNothing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t, func(c *config.Config) { c.Root = root })
	f := newFakeUbuntu(t, c)
	// Queries come from the fake Ubuntu; files from the real scratch root.
	base := &splitHost{Host: NewExecHost(root, nil), queries: f.h}
	var out bytes.Buffer
	secrets := &redact.Set{}
	h := NewDryRunHost(base, &out, secrets)
	o := initOptions(c, &out)
	o.DryRun, o.Force, o.Secrets = true, true, secrets
	if err := Init(context.Background(), h, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 0 {
		t.Errorf("the dry run wrote to the root: %v", entries)
	}
	plan := out.String()
	for _, want := range []string{
		"would run: apt-get install -y -q --no-install-recommends ufw fail2ban logrotate docker.io docker-compose-v2",
		"would run: sh " + root + "/firewall/ufw.sh",
		"would create " + root + "/nginx/nginx.conf (mode 0644)",
		"+    ssl_protocols TLSv1.3;",
		"would create /etc/fail2ban/jail.d/regctl.conf",
		"would create /etc/logrotate.d/regctl (mode 0644)",
		"+    copytruncate",
		"would run: docker compose -f " + root + "/compose.yaml -p regctl up -d --wait",
		"(with 10 bytes on stdin, not shown)",
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	if strings.Contains(plan, "PRIVATE KEY") || strings.Contains(plan, "s3cret-pw") {
		t.Error("the plan shows a private key or the password")
	}
	if len(f.h.Actions()) != 0 {
		t.Errorf("the dry run acted: %v", f.h.Actions())
	}
}

// TestInitDryRunMasksSecrets: a dry run masks what regctl.yaml holds (an
// S3 secret key, the password in database.url) and what init generates,
// in its diffs and everything else it prints, given only the set its host
// and output share.
func TestInitDryRunMasksSecrets(t *testing.T) {
	const s3Secret, dbPassword = `s3-p&<>"\'%/:@?#[]+$`, `db-p&<>"\'%/:@?#[] +$`
	root := filepath.Join(t.TempDir(), "root")
	c := testConfig(t, func(c *config.Config) {
		c.Root = root
		c.Storage.Driver = config.DriverS3
		c.Storage.S3 = config.S3{Bucket: "images", Region: "eu-central-1", AccessKey: "AKIAEXAMPLE", SecretKey: s3Secret, Secure: true}
		c.Database.URL = "mongodb://" + url.UserPassword("regctl", dbPassword).String() + "@db.internal/regctl"
	})
	f := newFakeUbuntu(t, c)
	base := &splitHost{Host: NewExecHost(root, nil), queries: f.h}
	var out bytes.Buffer
	secrets := &redact.Set{}
	w := secrets.Writer(&out)
	o := initOptions(c, nil)
	o.Out, o.DryRun, o.Force, o.Secrets, o.SelfSigned = w, true, true, secrets, true
	if err := Init(context.Background(), NewDryRunHost(base, w, secrets), o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	w.Flush()
	plan := out.String()
	if !strings.Contains(plan, "secretkey: \""+redact.Mask+"\"") || !strings.Contains(plan, "store: \""+redact.Mask) && !strings.Contains(plan, ":"+redact.Mask+"@db.internal") {
		t.Errorf("the plan does not show the masked settings:\n%s", plan)
	}
	for _, secret := range []string{s3Secret, dbPassword, `s3-p\u0026`, "db-p&%3C", "db-p\u0026%3C", "PRIVATE KEY"} {
		if strings.Contains(plan, secret) {
			t.Errorf("the plan shows %q", secret)
		}
	}
	if m := regexp.MustCompile(`secret: "[0-9a-f]{64}"`).FindString(plan); m != "" {
		t.Errorf("the plan shows the registry's HTTP secret: %s", m)
	}
}

// TestInitDryRunNoSummary: a dry run does not say that regctl is running.
func TestInitDryRunNoSummary(t *testing.T) {
	c := testConfig(t)
	f := newFakeUbuntu(t, c)
	var out bytes.Buffer
	o := initOptions(c, &out)
	o.DryRun = true
	if err := Init(context.Background(), NewDryRunHost(f.h, &out, nil), o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "regctl is running") || strings.Contains(out.String(), "Next steps") {
		t.Errorf("the dry run printed the summary:\n%s", out.String())
	}
}

// splitHost answers queries from one host and everything else from another.
type splitHost struct {
	Host
	queries Host
}

func (s *splitHost) Query(ctx context.Context, name string, args ...string) ([]byte, error) {
	return s.queries.Query(ctx, name, args...)
}

func (s *splitHost) Stat(p string) (fs.FileInfo, error) {
	if p == "/run/systemd/system" {
		return s.queries.Stat(p)
	}
	return s.Host.Stat(p)
}

func TestEnsureSecretsOnce(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	c := testConfig(t, func(c *config.Config) { c.Root = root })
	h := &noChownHost{NewExecHost(root, nil)}
	gen, err := EnsureSecrets(h, c, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(gen) != 4 {
		t.Errorf("generated %v", gen)
	}
	s1, err := LoadSecrets(h, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1.MongoPassword) != 64 || len(s1.RegistryHTTPSecret) != 64 || len(s1.TokenBundle) == 0 {
		t.Errorf("secrets %+v", s1)
	}
	for p, want := range map[string]os.FileMode{
		render.SecretsDir: 0o700, render.MongoPasswordFile: 0o600, render.RegistrySecretFile: 0o600,
		render.KeysDir: 0o700, "keys/signing.key": 0o600, "keys/ca.key": 0o600, render.DHParamsFile: 0o644,
	} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v mode %v, want %04o", p, err, fi.Mode().Perm(), want)
		}
	}
	os.Chmod(filepath.Join(root, render.MongoPasswordFile), 0o644)
	gen, err = EnsureSecrets(h, c, time.Now())
	if err != nil || len(gen) != 0 {
		t.Fatalf("second run generated %v, %v", gen, err)
	}
	s2, _ := LoadSecrets(h, c)
	if s2.MongoPassword != s1.MongoPassword || s2.RegistryHTTPSecret != s1.RegistryHTTPSecret || !bytes.Equal(s2.TokenBundle, s1.TokenBundle) {
		t.Error("secrets were regenerated")
	}
	if fi, _ := os.Stat(filepath.Join(root, render.MongoPasswordFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode not corrected: %04o", fi.Mode().Perm())
	}
}

// TestEnsureSecretsJoin: a joining host generates neither the registry's
// HTTP secret nor signing keys: each missing one stops init with what to
// do; with both in place (a copied secret, keys from regctl keys request,
// sign and join), nothing of them is generated and the bundle is the
// first host's.
func TestEnsureSecretsJoin(t *testing.T) {
	now := time.Now()
	first := filepath.Join(t.TempDir(), "first")
	root := filepath.Join(t.TempDir(), "second")
	c1 := testConfig(t, func(c *config.Config) { c.Root = first })
	c := testConfig(t, func(c *config.Config) { c.Root = root; c.Database.URL = "mongodb://db.internal/regctl" })
	if _, err := EnsureSecrets(&noChownHost{NewExecHost(first, nil)}, c1, now); err != nil {
		t.Fatal(err)
	}
	sf := SecretFiles{Host: &noChownHost{NewExecHost(root, nil)}, Config: c, Join: true}
	if _, err := sf.Ensure(now); err == nil || !strings.Contains(err.Error(), "registry-http-secret is missing: a joining host shares the first host's") {
		t.Fatalf("no http secret: %v", err)
	}
	secret, err := os.ReadFile(filepath.Join(first, render.RegistrySecretFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, render.RegistrySecretFile), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Ensure(now); err == nil || !strings.Contains(err.Error(), "regctl keys request, sign and join") {
		t.Fatalf("no keys: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, render.KeysDir, keys.CAKeyFile)); err == nil {
		t.Fatal("a joining host generated a CA")
	}
	kd, firstKeys := filepath.Join(root, render.KeysDir), filepath.Join(first, render.KeysDir)
	csr, err := keys.Request(kd, keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := keys.Sign(firstKeys, csr, now)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(filepath.Join(firstKeys, keys.CACertFile))
	refresh, _ := os.ReadFile(filepath.Join(firstKeys, keys.RefreshKeyFile))
	if err := keys.Join(kd, leaf, ca, refresh, now); err != nil {
		t.Fatal(err)
	}
	gen, err := sf.Ensure(now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gen, Generated{render.DHParamsFile}) {
		t.Errorf("a joined host generated %v, want only the DH parameters", gen)
	}
	s1, _ := LoadSecrets(sf.Host, c1)
	s2, err := sf.Load()
	if err != nil || s2.RegistryHTTPSecret != strings.TrimSpace(string(secret)) || !bytes.Equal(s2.TokenBundle, ca) {
		t.Errorf("joined secrets %+v, %v (first host's bundle %q)", s2, err, s1.TokenBundle)
	}
}

// noChownHost skips ownership changes, so the test runs as any user.
type noChownHost struct{ Host }

func (noChownHost) Chown(string, int, int) error { return nil }

func TestFFDHE2048(t *testing.T) {
	block, _ := pem.Decode(FFDHE2048())
	if block == nil || block.Type != "DH PARAMETERS" {
		t.Fatal("not a DH PARAMETERS block")
	}
	var params struct{ P, G *big.Int }
	if _, err := asn1.Unmarshal(block.Bytes, &params); err != nil {
		t.Fatal(err)
	}
	if params.P.BitLen() != 2048 || params.G.Int64() != 2 || !params.P.ProbablyPrime(8) {
		t.Errorf("p %d bits, g %v", params.P.BitLen(), params.G)
	}
	// RFC 7919 primes start and end with 64 one bits.
	ones := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 64), big.NewInt(1))
	if new(big.Int).And(params.P, ones).Cmp(ones) != 0 || new(big.Int).Rsh(params.P, 2048-64).Cmp(ones) != 0 {
		t.Error("not an RFC 7919 group")
	}
}

func TestPreflight(t *testing.T) {
	c := testConfig(t)
	ok := System{
		EUID: func() int { return 0 },
		OSRelease: func() ([]byte, error) {
			return []byte("ID=ubuntu\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04 LTS\"\n"), nil
		},
		PortFree: func(int) error { return nil },
		LookupHost: func(_ context.Context, _ string) ([]string, error) {
			return []string{"203.0.113.10"}, nil
		},
		HostAddrs: func() ([]net.IP, error) { return []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("203.0.113.10")}, nil },
		FreeSpace: func(string) (uint64, error) { return 50 << 30, nil },
	}
	if r := Preflight(context.Background(), ok, c, PreflightOptions{}); Failed(r) {
		t.Fatalf("a good host failed: %+v", r)
	}
	tests := []struct {
		name    string
		mutate  func(*System)
		opts    PreflightOptions
		failed  bool
		wantMsg string
	}{
		{"not root", func(s *System) { s.EUID = func() int { return 1000 } }, PreflightOptions{}, true, "sudo"},
		{"debian 13", func(s *System) {
			s.OSRelease = func() ([]byte, error) {
				return []byte("ID=debian\nVERSION_ID=\"13\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n"), nil
			}
		}, PreflightOptions{}, false, ""},
		{"centos", func(s *System) {
			s.OSRelease = func() ([]byte, error) {
				return []byte("ID=\"centos\"\nVERSION_ID=\"9\"\nPRETTY_NAME=\"CentOS Stream 9\"\n"), nil
			}
		}, PreflightOptions{}, true, "unsupported system CentOS Stream 9"},
		{"ubuntu 20.04", func(s *System) {
			s.OSRelease = func() ([]byte, error) { return []byte("ID=ubuntu\nVERSION_ID=\"20.04\"\n"), nil }
		}, PreflightOptions{}, true, "Ubuntu 22.04 and 24.04, Debian 12 and 13"},
		{"unknown skipped", func(s *System) { s.OSRelease = func() ([]byte, error) { return []byte("ID=arch\n"), nil } }, PreflightOptions{Skip: []string{CheckOS}}, false, ""},
		{"port busy", func(s *System) {
			s.PortFree = func(p int) error {
				if p == 80 {
					return errors.New("in use")
				}
				return nil
			}
		}, PreflightOptions{}, true, "ss -ltnp 'sport = :80'"},
		{"port busy by us", func(s *System) { s.PortFree = func(int) error { return errors.New("in use") } },
			PreflightOptions{PortsOurs: func() bool { return true }}, false, ""},
		{"dns elsewhere", func(s *System) {
			s.LookupHost = func(context.Context, string) ([]string, error) { return []string{"198.51.100.1"}, nil }
		}, PreflightOptions{}, true, "198.51.100.1, which is not an address of this host"},
		{"dns elsewhere self-signed", func(s *System) {
			s.LookupHost = func(context.Context, string) ([]string, error) { return []string{"198.51.100.1"}, nil }
		}, PreflightOptions{SelfSigned: true}, false, "only a warning"},
		{"no dns", func(s *System) {
			s.LookupHost = func(context.Context, string) ([]string, error) { return nil, errors.New("no such host") }
		}, PreflightOptions{}, true, "create an A (and AAAA) record"},
		{"disk", func(s *System) { s.FreeSpace = func(string) (uint64, error) { return 100 << 20, nil } }, PreflightOptions{}, true, "only 100 MiB free"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.mutate(&s)
			r := Preflight(context.Background(), s, c, tt.opts)
			if Failed(r) != tt.failed {
				t.Errorf("failed = %v, want %v: %+v", Failed(r), tt.failed, r)
			}
			if tt.wantMsg != "" {
				found := false
				for _, x := range r {
					found = found || strings.Contains(x.Msg, tt.wantMsg)
				}
				if !found {
					t.Errorf("no message with %q: %+v", tt.wantMsg, r)
				}
			}
		})
	}
}

func TestUFWComplete(t *testing.T) {
	active := "Status: active\nDefault: deny (incoming), allow (outgoing)\n\n22/tcp ALLOW IN Anywhere\n80/tcp ALLOW IN Anywhere\n443/tcp ALLOW IN Anywhere\n"
	if !UFWComplete(active, 22) {
		t.Error("complete firewall not recognised")
	}
	if UFWComplete(active, 2222) {
		t.Error("missing SSH port not noticed")
	}
	if UFWComplete(strings.Replace(active, "deny (incoming)", "allow (incoming)", 1), 22) {
		t.Error("default allow not noticed")
	}
	if UFWComplete("Status: inactive\n", 22) {
		t.Error("inactive firewall accepted")
	}
}

func TestParseComposePS(t *testing.T) {
	arr := `[{"Service":"nginx","State":"running","Health":"healthy"}]`
	lines := `{"Service":"nginx","State":"running","Health":"healthy"}` + "\n" + `{"Service":"registry","State":"exited","Health":""}`
	for _, in := range []string{arr, lines} {
		s, err := ParseComposePS([]byte(in))
		if err != nil || len(s) == 0 || s[0].Service != "nginx" {
			t.Errorf("%q: %+v %v", in, s, err)
		}
	}
}

// TestDockerPackages: each supported system gets docker, its CLI and the
// Compose v2 plugin under the names its own archive uses.
func TestDockerPackages(t *testing.T) {
	for _, tt := range []struct {
		osRelease string
		dockerCE  bool
		want      string
		err       string
	}{
		{"ID=ubuntu\nVERSION_ID=\"22.04\"\n", false, "docker.io docker-compose-v2", ""},
		{"ID=ubuntu\nVERSION_ID=\"24.04\"\n", false, "docker.io docker-compose-v2", ""},
		{"ID=debian\nVERSION_ID=\"13\"\n", false, "docker.io docker-cli docker-compose", ""},
		{"ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n", false, "", "Debian GNU/Linux 12 (bookworm) has no package of Docker Compose v2"},
		{"ID=debian\nVERSION_ID=\"12\"\n", true, "docker-compose-plugin", ""},
		{"ID=ubuntu\nVERSION_ID=\"24.04\"\n", true, "docker-compose-plugin", ""},
		{"ID=fedora\nVERSION_ID=41\n", false, "", "no known Docker packages"},
	} {
		d := ParseOSRelease([]byte(tt.osRelease))
		got, err := d.DockerPackages(tt.dockerCE)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s %s: err %v, want %q", d.ID, d.VersionID, err, tt.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("%s %s (docker-ce %t): %v %v, want %s", d.ID, d.VersionID, tt.dockerCE, got, err, tt.want)
		}
	}
}

// TestInitDebianPackages: on Debian 13 step 1 installs Debian's names.
func TestInitDebianPackages(t *testing.T) {
	c := testConfig(t)
	f := newFakeUbuntu(t, c)
	var out bytes.Buffer
	o := initOptions(c, &out)
	o.Distro = ParseOSRelease([]byte("PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nID=debian\nVERSION_ID=\"13\"\n"))
	if err := Init(context.Background(), f.h, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := "run apt-get install -y -q --no-install-recommends ufw fail2ban logrotate docker.io docker-cli docker-compose"
	if !slices.Contains(f.h.Actions(), want) {
		t.Errorf("no %q in\n%s", want, strings.Join(f.h.Actions(), "\n"))
	}
}

// TestInitStorePointer: init leaves the deployment's store where regctl on
// the host looks for it, with the address the host reaches it at.
func TestInitStorePointer(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(*config.Config)
		want   string
	}{
		{"sqlite", func(c *config.Config) { c.Database.Backend = config.BackendSQLite }, "sqlite:///opt/regctl/data/regctl/regctl.db\n"},
		{"managed mongo", func(_ *config.Config) {}, "mongodb://regctl:PASSWORD@172.31.255.3:27017/regctl?authSource=admin\n"},
		{"external mongo", func(c *config.Config) { c.Database.URL = "mongodb://db.internal:27017/regctl" }, "mongodb://db.internal:27017/regctl\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig(t, tt.mutate)
			f := newFakeUbuntu(t, c)
			var out bytes.Buffer
			if err := Init(context.Background(), f.h, initOptions(c, &out)); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			got, err := f.h.ReadFile(StorePointer)
			if err != nil {
				t.Fatal(err)
			}
			if pw, err := f.h.ReadFile(filepath.Join(c.Root, render.MongoPasswordFile)); err == nil {
				got = bytes.ReplaceAll(got, bytes.TrimSpace(pw), []byte("PASSWORD"))
			}
			if string(got) != tt.want {
				t.Errorf("%s = %q, want %q", StorePointer, got, tt.want)
			}
			if fi, _ := f.h.Stat(StorePointer); fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %04o, want 0600", StorePointer, fi.Mode().Perm())
			}
			if !strings.Contains(out.String(), "regctl user add NAME") || strings.Contains(out.String(), "exec regctl /regctl user add") {
				t.Errorf("the summary does not say to run regctl user add on the host:\n%s", out.String())
			}
		})
	}
}

// TestInitDockerEngineTooOld: step 1 stops on a Docker Engine older than
// MinDockerEngine, whose healthchecks would not take start_interval.
func TestInitDockerEngineTooOld(t *testing.T) {
	for _, tt := range []struct {
		engine string
		ok     bool
	}{
		{"24.0.7", false},
		{"20.10.24+dfsg1", false},
		{"garbage", false},
		{"25.0.0", true},
		{"26.1.5+dfsg1", true},
	} {
		t.Run(tt.engine, func(t *testing.T) {
			c := testConfig(t)
			f := newFakeUbuntu(t, c)
			f.engine = tt.engine
			var out bytes.Buffer
			err := Init(context.Background(), f.h, initOptions(c, &out))
			if tt.ok {
				if err != nil {
					t.Fatalf("engine %s: %v\n%s", tt.engine, err, out.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "too old") || !strings.Contains(err.Error(), "step 1/9") {
				t.Fatalf("engine %s: err = %v, want step 1 to refuse it as too old", tt.engine, err)
			}
		})
	}
}
