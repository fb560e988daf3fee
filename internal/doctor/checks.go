package doctor

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/provision"
	"github.com/regctl/regctl/internal/render"
)

// --- DNS ---------------------------------------------------------------

func (r *run) dns(ctx context.Context) {
	if r.LookupHost == nil || r.HostAddrs == nil {
		r.add(CheckDNS, Skip, "", "no resolver")
		return
	}
	local, err := r.HostAddrs()
	if err != nil {
		r.add(CheckDNS, Error, "", "list this host's addresses: %v", err)
		return
	}
	for _, name := range r.c.Names() {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		addrs, err := r.LookupHost(lctx, name)
		cancel()
		if err != nil {
			r.add(CheckDNS, Error, "create an A (and AAAA) record for "+name+" pointing at this host",
				"%s does not resolve: %v", name, err)
			continue
		}
		var here []string
		for _, a := range addrs {
			ip := net.ParseIP(a)
			for _, l := range local {
				if ip != nil && ip.Equal(l) {
					here = append(here, a)
				}
			}
		}
		if len(here) > 0 {
			r.add(CheckDNS, OK, "", "%s resolves to this host (%s)", name, strings.Join(here, ", "))
			continue
		}
		r.add(CheckDNS, Warn, "point the A/AAAA record of "+name+" here, unless this host is behind NAT or a floating IP",
			"%s resolves to %s, not an address of this host", name, strings.Join(addrs, ", "))
	}
}

// --- TLS certificates --------------------------------------------------

func (r *run) tls(_ context.Context) {
	for _, name := range r.c.Names() {
		p := r.abs(render.CertFile(name))
		obtain := "regctl certs obtain " + name + r.configFlag() + " (or regctl init)"
		certs, err := keys.ReadCertificates(p)
		switch {
		case notExist(err):
			r.add(CheckTLS, Error, obtain, "%s: no certificate for %s", p, name)
			continue
		case err != nil:
			r.add(CheckTLS, Error, obtain, "%v", err)
			continue
		}
		leaf := certs[0]
		renew := "regctl certs renew" + r.configFlag() + "; see regctl certs status and " + r.abs(render.RenewLogFile)
		left := leaf.NotAfter.Sub(r.now)
		switch {
		case leaf.VerifyHostname(name) != nil:
			r.add(CheckTLS, Error, obtain, "%s does not cover %s (names: %s)", p, name, strings.Join(leaf.DNSNames, ", "))
		case left <= 0:
			r.add(CheckTLS, Error, renew, "%s expired on %s: clients refuse the registry", p, date(leaf.NotAfter))
		case left < TLSWarning:
			r.add(CheckTLS, Warn, renew, "%s expires on %s (in %s): renewal is overdue", p, date(leaf.NotAfter), days(left))
		case selfSigned(leaf):
			r.add(CheckTLS, Warn, obtain, "%s is self-signed (valid until %s): clients must be told to trust it", p, date(leaf.NotAfter))
		default:
			r.add(CheckTLS, OK, "", "%s valid until %s (in %s), issued by %s", name, date(leaf.NotAfter), days(left), leaf.Issuer.CommonName)
		}
	}
}

// selfSigned reports whether c is signed by its own key (a leaf is no CA,
// so CheckSignatureFrom would refuse it as its own parent).
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// --- token-signing key -------------------------------------------------

func (r *run) signing(_ context.Context) {
	dir := r.abs(render.KeysDir)
	rotate := "regctl keys rotate --dir " + dir
	if !exists(filepath.Join(dir, keys.CAKeyFile)) {
		// A joined host: its certificate comes from the first host's CA.
		rotate = "regctl keys request --dir " + dir + ", regctl keys sign on the host with the CA, then regctl keys join (docs/scale-out.md)"
	}
	crtPath := filepath.Join(dir, keys.SigningCrtFile)
	leaf, leafErr := keys.ReadCertificate(crtPath)

	// The key set as regctl serve loads it. An expired certificate is the
	// expiry check's to report, so the set is loaded as of a moment when
	// the certificate was valid, to find every other problem.
	at := r.now
	if leaf != nil && !at.Before(leaf.NotAfter) {
		at = leaf.NotAfter.Add(-time.Minute)
	}
	ks, err := keys.Load(dir, at)
	var modeErr *keys.ModeError
	switch {
	case errors.As(err, &modeErr):
		r.add(CheckSigningKeys, Error, "chmod 600 "+modeErr.Path, "%v", err)
	case err != nil && !exists(filepath.Join(dir, keys.SigningKeyFile)):
		r.add(CheckSigningKeys, Error, "regctl render"+r.configFlag()+" (generates the keys once)", "%v", err)
	case err != nil:
		r.add(CheckSigningKeys, Error, "restore "+dir+" from a backup, or issue a new key: "+rotate, "%v", err)
	default:
		msg := fmt.Sprintf("%s key %s in %s", ks.Algorithm, ks.KeyID, dir)
		if len(ks.Previous) > 0 {
			msg += " (previous key kept in " + keys.PrevSigningCrtFile + ")"
		}
		r.add(CheckSigningKeys, OK, "", "%s", msg)
	}

	switch {
	case notExist(leafErr):
		r.add(CheckSigningExpiry, Skip, "", "no signing certificate (%s)", crtPath)
		r.add(CheckSigningBundle, Skip, "", "no signing certificate")
		return
	case leafErr != nil:
		r.add(CheckSigningExpiry, Error, rotate, "%v", leafErr)
		r.add(CheckSigningBundle, Skip, "", "no signing certificate to check")
		return
	}
	left := leaf.NotAfter.Sub(r.now)
	switch {
	case left <= 0:
		r.add(CheckSigningExpiry, Error, rotate, "the signing certificate expired on %s: the registry rejects every token", date(leaf.NotAfter))
	case left < keys.ExpiryWarning:
		r.add(CheckSigningExpiry, Warn, rotate, "the signing certificate expires on %s (in %s); every token fails after that", date(leaf.NotAfter), days(left))
	default:
		r.add(CheckSigningExpiry, OK, "", "the signing certificate is valid until %s (in %s)", date(leaf.NotAfter), days(left))
	}

	// The registry must trust the CA that issued the signing certificate.
	bundle := r.abs(render.RegistryBundleFile)
	keysBundle := filepath.Join(dir, keys.BundleFile)
	rerender := "regctl render" + r.configFlag() + ", then " + strings.Join(r.compose(), " ") + " restart registry"
	roots, err := keys.ReadCertificates(bundle)
	note := ""
	if notExist(err) {
		note = " (the registry's copy " + bundle + " is missing)"
		bundle = keysBundle
		roots, err = keys.ReadCertificates(bundle)
	}
	if err != nil {
		r.add(CheckSigningBundle, Error, rerender, "%v", err)
		return
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	at = r.now
	if !at.Before(leaf.NotAfter) {
		at = leaf.NotAfter.Add(-time.Minute)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		r.add(CheckSigningBundle, Error, rerender, "%s does not chain to %s, which the registry trusts: %v", crtPath, bundle, err)
		return
	}
	if note == "" {
		if a, b := readOr(bundle), readOr(keysBundle); a != nil && b != nil && !bytes.Equal(a, b) {
			r.add(CheckSigningBundle, Warn, rerender, "the signing certificate chains to %s, but it differs from %s", bundle, keysBundle)
			return
		}
	}
	st := OK
	if note != "" {
		st = Warn
	}
	r.add(CheckSigningBundle, st, rerender, "the signing certificate chains to %s%s", bundle, note)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func readOr(p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	return b
}

// --- issuer, service, realm --------------------------------------------

type registryConf struct {
	Auth struct {
		Token struct {
			Realm          string `yaml:"realm"`
			Service        string `yaml:"service"`
			Issuer         string `yaml:"issuer"`
			RootCertBundle string `yaml:"rootcertbundle"`
		} `yaml:"token"`
	} `yaml:"auth"`
}

type tokenConf struct {
	Issuer   string    `yaml:"issuer"`
	Services yamlNames `yaml:"service"`
}

// yamlNames is a list of names, or one name (as token-server.yaml had it
// before regctl serve took several services).
type yamlNames []string

func (n *yamlNames) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode {
		*n = yamlNames{v.Value}
		return nil
	}
	return v.Decode((*[]string)(n))
}

func readYAML(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

func (r *run) tokenConfig(_ context.Context) {
	regPath, tokPath := r.abs(render.RegistryConfFile), r.abs(render.TokenConfFile)
	fix := "regctl render" + r.configFlag() + ", then " + strings.Join(r.compose(), " ") + " restart registry regctl"
	var reg registryConf
	var tok tokenConf
	for _, f := range []struct {
		p string
		v any
	}{{regPath, &reg}, {tokPath, &tok}} {
		if err := readYAML(f.p, f.v); err != nil {
			if notExist(err) {
				err = fmt.Errorf("%s is missing", f.p)
			}
			r.add(CheckTokenConfig, Error, fix, "%v", err)
			return
		}
	}
	t := reg.Auth.Token
	var bad []string
	cmp := func(what, a, aSrc, b, bSrc string) {
		if a != b {
			bad = append(bad, fmt.Sprintf("%s %q in %s but %q in %s", what, a, aSrc, b, bSrc))
		}
	}
	const yamlSrc = "regctl.yaml"
	cmp("issuer", t.Issuer, render.RegistryConfFile, tok.Issuer, render.TokenConfFile)
	cmp("issuer", tok.Issuer, render.TokenConfFile, r.c.Token.Issuer, yamlSrc)
	services := strings.Join(tok.Services, ", ")
	cmp("service", t.Service, render.RegistryConfFile, strings.Join(tok.Services[:min(1, len(tok.Services))], ""), render.TokenConfFile+" (its first)")
	cmp("service", services, render.TokenConfFile, strings.Join(r.c.TokenServer().Services, ", "), yamlSrc)
	cmp("realm", t.Realm, render.RegistryConfFile, r.c.Realm(), yamlSrc)
	if len(bad) > 0 {
		r.add(CheckTokenConfig, Error, fix, "%s", strings.Join(bad, "; "))
		return
	}
	r.add(CheckTokenConfig, OK, "", "issuer %q, service %q and realm %s agree in the registry, the token server and regctl.yaml", t.Issuer, t.Service, t.Realm)
}

// --- store ---------------------------------------------------------------

func (r *run) store(ctx context.Context) {
	if r.Store == nil {
		r.storeViaTokenServer(ctx)
		return
	}
	fix := "start the store, and check that --store or database.url names it"
	if r.c.Database.Backend == config.BackendSQLite {
		fix = strings.Join(append(r.compose(), "up", "-d"), " ") + " (the token server creates its database), or pass --store"
	}
	st, err := r.Store(ctx)
	if err != nil {
		r.add(CheckStore, Error, fix, "cannot open the store: %v", oneLine(err))
		r.add(CheckIndexes, Skip, "", "store unreachable")
		r.add(CheckClock, Skip, "", "store unreachable")
		return
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = st.Close(cctx)
	}()
	if err := st.Ping(ctx); err != nil {
		r.add(CheckStore, Error, fix, "the store does not answer: %v", oneLine(err))
		r.add(CheckIndexes, Skip, "", "store unreachable")
		r.add(CheckClock, Skip, "", "store unreachable")
		return
	}
	rules, err := st.ListRules(ctx)
	if err != nil {
		r.add(CheckStore, Error, "fix the rule it names with regctl acl import, or restore the acl collection", "the store answers but its rules do not load: %v", oneLine(err))
	} else {
		r.add(CheckStore, OK, "", "the store answers (%d rule(s))", len(rules))
	}

	if ic, ok := st.(IndexChecker); ok {
		if err := ic.CheckIndexes(ctx); err != nil {
			r.add(CheckIndexes, Error, "drop the conflicting index, then run any regctl command on the store (it creates the indexes)", "%v", oneLine(err))
		} else {
			r.add(CheckIndexes, OK, "", "the unique indexes are present")
		}
	} else {
		r.add(CheckIndexes, Skip, "", "this store keeps its schema itself (no index check)")
	}

	sc, ok := st.(ServerClock)
	if !ok {
		r.add(CheckClock, Skip, "", "this store has no clock of its own (embedded)")
		return
	}
	t0 := r.Now()
	server, err := sc.ServerTime(ctx)
	t1 := r.Now()
	if err != nil {
		r.add(CheckClock, Skip, "", "cannot read the store's clock: %v", oneLine(err))
		return
	}
	skew := server.Sub(t0.Add(t1.Sub(t0) / 2))
	abs := skew.Abs()
	msg := fmt.Sprintf("the store's clock is %s %s this host's", abs.Round(time.Millisecond), map[bool]string{true: "ahead of", false: "behind"}[skew >= 0])
	switch fix := "synchronise both clocks with NTP (timedatectl set-ntp true)"; {
	case abs > SkewError:
		r.add(CheckClock, Error, fix, "%s: expiry dates and tokens go wrong", msg)
	case abs > SkewWarning:
		r.add(CheckClock, Warn, fix, "%s", msg)
	default:
		r.add(CheckClock, OK, "", "%s", msg)
	}
}

// storeViaTokenServer asks the token server whether it reaches the store:
// the managed MongoDB is on the compose network only.
func (r *run) storeViaTokenServer(ctx context.Context) {
	note := r.StoreNote
	if note == "" {
		note = "pass --store to check it from here"
	}
	if r.Runner == nil || !r.c.ManagedMongo() {
		r.add(CheckStore, Skip, "", "%s", note)
		r.add(CheckIndexes, Skip, "", "%s", note)
		r.add(CheckClock, Skip, "", "%s", note)
		return
	}
	_, port, _ := net.SplitHostPort(r.c.Upstreams.Token)
	url := "http://127.0.0.1:" + port + "/readyz"
	argv := append(r.compose(), "exec", "-T", "regctl", "/regctl", "healthcheck", url)
	if _, err := r.Runner.Query(ctx, argv[0], argv[1:]...); err != nil {
		r.add(CheckStore, Error, strings.Join(append(r.compose(), "logs", "regctl", "mongo"), " "),
			"the token server's %s does not answer 200 (it does not reach the store, or is not running): %s", url, cmdMsg(err))
	} else {
		r.add(CheckStore, OK, "", "the token server reaches the managed MongoDB (its /readyz answers 200)")
	}
	r.add(CheckIndexes, Skip, "", "%s", note)
	r.add(CheckClock, Skip, "", "%s", note)
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// logPrefix is the time stamp and level fail2ban-client puts before its
// messages.
var logPrefix = regexp.MustCompile(`^\d{4}-\d\d-\d\d \S+ \S+\s+\[\d+\]:\s+[A-Z]+\s+`)

// cmdMsg is the gist of a failed command: the last line it printed, or
// the error itself.
func cmdMsg(err error) string {
	var ce *provision.CmdError
	if errors.As(err, &ce) {
		lines := strings.Split(strings.TrimSpace(ce.Output), "\n")
		if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
			return logPrefix.ReplaceAllString(last, "")
		}
		return ce.Err.Error()
	}
	return oneLine(err)
}

// --- file modes ----------------------------------------------------------

// privateDirs and privateFiles are what group and others must not read:
// keys, secrets, the registry's and token server's configuration (HTTP
// secret, store URL), certificate keys, ACME accounts, the embedded
// store and the audit log (who pulled what, from where). Globs are relative to the root.
var (
	privateDirs = []string{
		render.KeysDir, render.SecretsDir, path.Dir(render.RegistryConfFile), path.Dir(render.TokenConfFile),
		render.LiveDir, render.LiveDir + "/*", render.CertsDir + "/accounts", render.CertsDir + "/accounts/*", render.CertsDir + "/accounts/*/*",
		render.StateDir, render.SQLiteDataDir, render.TokenLogDir,
	}
	privateFiles = []string{
		render.KeysDir + "/" + keys.CAKeyFile, render.KeysDir + "/" + keys.SigningKeyFile,
		render.KeysDir + "/" + keys.PrevSigningKeyFile, render.KeysDir + "/" + keys.RefreshKeyFile,
		render.SecretsDir + "/*", render.RegistryConfFile, render.TokenConfFile,
		render.LiveDir + "/*/" + "privkey.pem", render.CertsDir + "/accounts/*/*/*",
		render.ManifestFile, render.AuditLogFile,
	}
)

// maxModeFindings caps the file-mode findings listed one by one.
const maxModeFindings = 10

func (r *run) fileModes(_ context.Context) {
	var bad []Finding
	checked := 0
	visit := func(pattern string, dir bool) {
		matches, _ := filepath.Glob(r.abs(pattern))
		for _, p := range matches {
			fi, err := os.Lstat(p)
			if err != nil {
				continue
			}
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				bad = append(bad, Finding{Check: CheckModes, Status: Error, Message: p + " is a symbolic link; regctl does not follow links below the root",
					Fix: "replace it with the file itself"})
				continue
			case dir != fi.IsDir():
				continue
			}
			checked++
			perm := fi.Mode().Perm()
			want, chmod := fs.FileMode(0o600), "chmod 600 "
			if dir {
				want, chmod = 0o700, "chmod 700 "
			}
			if perm&0o077 != 0 {
				bad = append(bad, Finding{Check: CheckModes, Status: Error,
					Message: fmt.Sprintf("%s has mode %04o; group and others must have no access (want %04o)", p, perm, want),
					Fix:     chmod + p})
			}
		}
	}
	for _, d := range privateDirs {
		visit(d, true)
	}
	for _, f := range privateFiles {
		visit(f, false)
	}
	if len(bad) == 0 && checked == 0 {
		r.add(CheckModes, Skip, "", "no keys, secrets or private configuration below %s yet", r.c.Root)
		return
	}
	if len(bad) == 0 {
		r.add(CheckModes, OK, "", "%d private files and directories below %s are readable by their owner only", checked, r.c.Root)
		return
	}
	sort.SliceStable(bad, func(i, j int) bool { return bad[i].Message < bad[j].Message })
	if len(bad) > maxModeFindings {
		n := len(bad) - maxModeFindings + 1
		bad = append(bad[:maxModeFindings-1], Finding{Check: CheckModes, Status: Error,
			Message: fmt.Sprintf("and %d more file(s) or director(ies) readable by group or others", n),
			Fix:     "regctl render" + r.configFlag() + " sets the modes it renders; chmod the rest"})
	}
	r.out = append(r.out, bad...)
}

// --- published ports -----------------------------------------------------

type composeFile struct {
	Services map[string]struct {
		Ports       []any  `yaml:"ports"`
		NetworkMode string `yaml:"network_mode"`
	} `yaml:"services"`
}

// publisher is the one service allowed to publish ports.
const publisher = "nginx"

func (r *run) composePorts(_ context.Context) {
	p := r.abs(render.ComposeFile)
	fix := "remove the ports (or network_mode: host) from those services; regctl render" + r.configFlag() + " writes a compose.yaml where only nginx publishes"
	var cf composeFile
	if err := readYAML(p, &cf); err != nil {
		if notExist(err) {
			r.add(CheckPorts, Error, "regctl render"+r.configFlag(), "%s is missing", p)
			return
		}
		r.add(CheckPorts, Error, "regctl render"+r.configFlag(), "%v", err)
		return
	}
	var bad []string
	names := make([]string, 0, len(cf.Services))
	for n := range cf.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := cf.Services[n]
		if n == publisher {
			continue
		}
		if len(s.Ports) > 0 {
			bad = append(bad, fmt.Sprintf("%s publishes %s", n, portList(s.Ports)))
		}
		if s.NetworkMode == "host" {
			bad = append(bad, n+" uses the host's network")
		}
	}
	if len(bad) > 0 {
		r.add(CheckPorts, Error, fix, "%s: %s; Docker-published ports bypass ufw", p, strings.Join(bad, "; "))
		return
	}
	pub := "nothing"
	if s, ok := cf.Services[publisher]; ok && len(s.Ports) > 0 {
		pub = portList(s.Ports)
	}
	r.add(CheckPorts, OK, "", "only nginx publishes ports (%s)", pub)
}

func portList(ports []any) string {
	var out []string
	for _, p := range ports {
		switch v := p.(type) {
		case map[string]any:
			out = append(out, fmt.Sprintf("%v:%v", v["published"], v["target"]))
		default:
			out = append(out, fmt.Sprint(v))
		}
	}
	return strings.Join(out, ", ")
}

// --- ufw and fail2ban ----------------------------------------------------

func notInstalled(err error) bool { return errors.Is(err, exec.ErrNotFound) }

// denied reports a command that failed for want of privileges.
var denied = regexp.MustCompile(`(?i)permission denied|need to be root|must be root|operation not permitted`)

func (r *run) ufw(ctx context.Context) {
	if r.Runner == nil {
		r.add(CheckUFW, Skip, "", "no command runner")
		return
	}
	script := r.abs(render.UFWScriptFile)
	out, err := r.Runner.Query(ctx, "ufw", "status", "verbose")
	switch {
	case notInstalled(err):
		r.add(CheckUFW, Error, "apt-get install ufw, then sh "+script+" (regctl init does both)", "ufw is not installed: nothing filters incoming traffic")
		return
	case err != nil && denied.MatchString(err.Error()):
		r.add(CheckUFW, Warn, "run regctl doctor as root", "cannot read the firewall's status: %s", cmdMsg(err))
		return
	case err != nil:
		r.add(CheckUFW, Error, "sh "+script, "ufw status failed: %s", cmdMsg(err))
		return
	}
	status := string(out)
	switch {
	case !strings.Contains(status, "Status: active"):
		r.add(CheckUFW, Error, "sh "+script+" (allows SSH first, then 80 and 443)", "the firewall is inactive")
	case !provision.UFWComplete(status, r.c.SSH.Port):
		var missing []string
		if !strings.Contains(status, "deny (incoming)") {
			missing = append(missing, "default deny incoming")
		}
		for _, p := range []string{fmt.Sprintf("%d/tcp", r.c.SSH.Port), "80/tcp", "443/tcp"} {
			if !ufwAllows(status, p) {
				missing = append(missing, "allow "+p)
			}
		}
		r.add(CheckUFW, Warn, "sh "+script, "the firewall is active but lacks %s", strings.Join(missing, ", "))
	default:
		r.add(CheckUFW, OK, "", "active: deny incoming, allow %d/tcp (SSH), 80/tcp and 443/tcp", r.c.SSH.Port)
	}
}

func ufwAllows(status, port string) bool {
	for _, line := range strings.Split(status, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == port && f[1] == "ALLOW" && f[2] == "IN" {
			return true
		}
	}
	return false
}

var bannedRE = regexp.MustCompile(`Currently banned:\s*(\d+)`)

func (r *run) fail2ban(ctx context.Context) {
	if r.Runner == nil {
		r.add(CheckFail2ban, Skip, "", "no command runner")
		return
	}
	install := fmt.Sprintf("regctl init%s (installs %s and %s, then reloads fail2ban)", r.configFlag(), render.InstalledJail, render.InstalledFilter)
	out, err := r.Runner.Query(ctx, "fail2ban-client", "status", JailName)
	switch {
	case notInstalled(err):
		r.add(CheckFail2ban, Error, "apt-get install fail2ban, then "+install, "fail2ban is not installed: nothing bans password guessers")
	case err != nil && denied.MatchString(err.Error()):
		r.add(CheckFail2ban, Warn, "run regctl doctor as root", "cannot ask fail2ban: %s", cmdMsg(err))
	case err != nil && strings.Contains(err.Error(), "does not exist"):
		r.add(CheckFail2ban, Error, install, "fail2ban runs, but has no jail %s", JailName)
	case err != nil:
		r.add(CheckFail2ban, Error, "systemctl enable --now fail2ban; then "+install, "fail2ban does not answer: %s", cmdMsg(err))
	default:
		msg := fmt.Sprintf("jail %s is active", JailName)
		if m := bannedRE.FindStringSubmatch(string(out)); m != nil {
			msg += " (" + m[1] + " banned)"
		}
		r.add(CheckFail2ban, OK, "", "%s", msg)
	}
}
