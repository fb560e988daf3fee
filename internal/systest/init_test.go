//go:build integration

// Package systest runs `regctl init` for real on a fresh host (a Debian
// trixie container booted with systemd-nspawn, see
// internal/testenv/freshhost) and checks the stack it built from outside
// the host, as a registry's users would see it. Run alone with:
//
//	go test -tags integration -run TestInitFreshHost -v ./internal/systest
package systest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/testenv/clients"
	"github.com/regctl/regctl/internal/testenv/freshhost"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBuilds()
	os.Exit(code)
}

// registryName is the registry's name, resolved to the host outside it.
const registryName = "registry.regctl.test"

// deployment is a fresh host with regctl on it and its regctl.yaml.
type deployment struct {
	h     *freshhost.Host
	cfgs  string // the clients' docker configs, one directory per user
	cbin  string // crane
	image string // docker-archive tarball to push
	layer string // its layer, for `docker import`
	admin string // the first admin user's password
}

// newDeployment returns the deployment on h, with a test image and a
// random first admin password.
func newDeployment(t *testing.T, h *freshhost.Host, crane string) *deployment {
	t.Helper()
	d := &deployment{h: h, cfgs: t.TempDir(), cbin: crane, admin: "admin-" + testenv.RandomHex(8)}
	dir := t.TempDir()
	d.image = testenv.MakeImage(t, crane, dir)
	d.layer = filepath.Join(dir, "layer.tar.gz")
	return d
}

// regctl runs regctl on the host, as an admin would: no --store, no
// REGCTL_* settings.
func (d *deployment) regctl(t *testing.T, stdin string, args ...string) testenv.Result {
	t.Helper()
	return d.h.Exec(t, freshhost.Cmd{Args: append([]string{"regctl"}, args...), Stdin: strings.NewReader(stdin), Timeout: 15 * time.Minute})
}

func (d *deployment) mustRegctl(t *testing.T, stdin string, args ...string) testenv.Result {
	t.Helper()
	r := d.regctl(t, stdin, args...)
	if r.Code != 0 {
		t.Fatalf("regctl %s: exit %d\n%s", strings.Join(args, " "), r.Code, r.Output())
	}
	return r
}

// init runs `regctl init` with the first admin's password on stdin.
func (d *deployment) init(t *testing.T, extra ...string) (testenv.Result, time.Duration) {
	t.Helper()
	start := time.Now()
	args := append([]string{"init", "--config", "/etc/regctl/regctl.yaml", "--password-stdin"}, extra...)
	r := d.regctl(t, d.admin+"\n", args...)
	return r, time.Since(start)
}

// crane runs crane outside the host as user (its own docker config).
func (d *deployment) crane(t *testing.T, user string, args ...string) testenv.Result {
	t.Helper()
	cfg := d.config(t, user)
	return d.h.OutsideExec(t, freshhost.Cmd{
		Args:    append([]string{d.cbin, "--insecure"}, args...),
		Env:     []string{"DOCKER_CONFIG=" + cfg, "HOME=" + cfg},
		Timeout: 5 * time.Minute,
	})
}

// config is user's docker config directory.
func (d *deployment) config(t *testing.T, user string) string {
	t.Helper()
	cfg := filepath.Join(d.cfgs, user)
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// login logs user in with crane.
func (d *deployment) login(t *testing.T, user, pw string) testenv.Result {
	t.Helper()
	cfg := d.config(t, user)
	return d.h.OutsideExec(t, freshhost.Cmd{
		Args:  []string{d.cbin, "--insecure", "auth", "login", registryName, "-u", user, "--password-stdin"},
		Env:   []string{"DOCKER_CONFIG=" + cfg, "HOME=" + cfg},
		Stdin: strings.NewReader(pw),
	})
}

func (d *deployment) push(t *testing.T, user, ref string) testenv.Result {
	t.Helper()
	return d.crane(t, user, "push", d.image, registryName+"/"+ref)
}

func (d *deployment) digest(t *testing.T, user, ref string) testenv.Result {
	t.Helper()
	return d.crane(t, user, "digest", registryName+"/"+ref)
}

// addUser creates user with `regctl user add` on the host, exactly as the
// summary of init says, and returns its password.
func (d *deployment) addUser(t *testing.T, user string, flags ...string) string {
	t.Helper()
	pw := "pw-" + testenv.RandomHex(12)
	d.mustRegctl(t, pw+"\n", append([]string{"user", "add", user, "--password-stdin"}, flags...)...)
	return pw
}

func denied(r testenv.Result) bool {
	out := strings.ToLower(r.Output())
	return r.Code != 0 && (strings.Contains(out, "denied") || strings.Contains(out, "unauthorized") || strings.Contains(out, "401") || strings.Contains(out, "403"))
}

// TestInitFreshHost: `regctl init` on a fresh host with the embedded store.
// The host has no docker, ufw or fail2ban (init installs them from the
// host's apt sources, a local repository here) and no route out, so the
// images are loaded into its dockerd: the first init stops at step 7 when
// compose cannot pull them, and the next run resumes there.
func TestInitFreshHost(t *testing.T) {
	freshhost.RequireMachine(t)
	t.Parallel()
	crane := testenv.Require(t, testenv.EnvCrane, "the path of a crane binary (go-containerregistry v0.22.1)")
	a := freshhost.Cache(t)

	h := bootRegctlHost(t, freshhost.Options{
		Variant:    freshhost.Bare,
		Persistent: true,
		MountRepo:  true,
	})
	d := newDeployment(t, h, crane)
	h.WriteRegctlYAML(t, registryName, "backend: sqlite", "")

	// First run: preflight, then steps 1-6, and step 7 fails: no image.
	r, took := d.init(t, "--self-signed")
	t.Logf("TIMING first init (until step 7 fails): %s", took.Round(time.Millisecond))
	if r.Code == 0 || !strings.Contains(r.Stderr, "step 7/9 (build and start the containers) failed") {
		t.Fatalf("first init: exit %d, want step 7 to fail on the missing images\n%s", r.Code, r.Output())
	}
	for _, step := range []string{"[1/9] install packages", "[6/9] render the configuration"} {
		if !strings.Contains(r.Stderr, step) {
			t.Errorf("first init did not run %q:\n%s", step, r.Stderr)
		}
	}
	h.MustRun(t, "", "docker", "compose", "version") // installed by step 1
	start := time.Now()
	h.LoadImages(t, a.Images.Nginx, a.Images.Registry)
	t.Logf("TIMING docker load: %s", time.Since(start).Round(time.Millisecond))

	// Second run: resumes, steps 1-6 already in place.
	r, took = d.init(t, "--self-signed")
	t.Logf("TIMING init (resumed at step 7): %s\n%s", took.Round(time.Millisecond), r.Stderr)
	if r.Code != 0 {
		t.Fatalf("init: exit %d\n%s", r.Code, r.Output())
	}
	for i := 1; i <= 6; i++ {
		if i == 3 || i == 4 {
			continue // the jail's log and the secrets' modes are rechecked
		}
		if !stepSays(r.Stderr, i, "already in place") {
			t.Errorf("step %d was not in place on the resumed run:\n%s", i, r.Stderr)
		}
	}

	t.Run("users-and-pushes", d.testClassic)
	t.Run("only-80-and-443", d.testPorts)

	d.testNoopInit(t)
	t.Run("reboot", d.testReboot)

	t.Run("doctor", func(t *testing.T) {
		// The registry's name must resolve on the host too: as a DNS
		// record would make it, here through /etc/hosts.
		h.Sh(t, "echo '"+h.IP.String()+" "+registryName+"' >>/etc/hosts")
		if r := d.regctl(t, "", "doctor", "--config", "/etc/regctl/regctl.yaml"); r.Code != 0 {
			t.Errorf("doctor on a fresh deployment: exit %d\n%s", r.Code, r.Output())
		}
		// A deliberate break: a private key readable by others.
		h.MustRun(t, "", "chmod", "0644", "/opt/regctl/keys/signing.key")
		r := d.regctl(t, "", "doctor", "--config", "/etc/regctl/regctl.yaml")
		if r.Code == 0 || !strings.Contains(r.Stdout, "signing.key") {
			t.Errorf("doctor after chmod 0644 signing.key: exit %d\n%s", r.Code, r.Output())
		}
		h.MustRun(t, "", "chmod", "0600", "/opt/regctl/keys/signing.key")
	})
}

// testClassic: the article's scenario with docker, skopeo and crane from
// outside the host, with users made by `regctl user add` on the host (no
// --store: init pointed regctl at the deployment). The clients trust the
// self-signed chain the way init's summary says: docker through
// certs.d/NAME/ca.crt, skopeo through its certificate directory, crane
// (Go) through SSL_CERT_FILE.
func (d *deployment) testClassic(t *testing.T) {
	pw := map[string]string{
		"waldi":  d.addUser(t, "waldi", "--label", "full-access=test/*", "--label", "full-access=socke*"),
		"ops":    d.addUser(t, "ops", "--label", "full-access=prod/*"),
		"reader": d.addUser(t, "reader", "--label", "read-only-access=prod/*"),
		"gone":   d.addUser(t, "gone", "--label", "full-access=test/*"),
	}
	expiry := time.Now().Add(2 * time.Second)
	d.mustRegctl(t, "", "user", "expire", "gone", expiry.UTC().Format(time.RFC3339))
	if r := d.mustRegctl(t, "", "user", "list"); !strings.Contains(r.Stdout, "waldi") {
		t.Fatalf("user list on the host does not show waldi:\n%s", r.Output())
	}

	chain := d.h.ReadFile(t, "/opt/regctl/certs/live/"+registryName+"/fullchain.pem")
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	d.h.OutsideFile(t, "/etc/docker/certs.d/"+registryName+"/ca.crt", chain, 0o644)
	dockerHost := d.h.OutsideDockerd(t)
	dir := t.TempDir()
	client := func(t *testing.T, kind, user string) *clients.Client {
		c := clients.New(t, kind, d.cbin, registryName, user, pw[user], dir)
		c.Image, c.Layer, c.CA = d.image, d.layer, ca
		c.Run = d.outside
		if kind == "docker" {
			c.Env = []string{"DOCKER_HOST=" + dockerHost}
		}
		return c
	}

	// Users apply within the token server's reload interval.
	first := client(t, "crane", "waldi")
	first.MustLogin(t)
	if err := testenv.Poll(30*time.Second, time.Second, func() error {
		if r := first.Push(t, "test/app:first"); r.Code != 0 {
			return fmt.Errorf("waldi pushes test/app:first: exit %d: %s", r.Code, lastLine(r.Output()))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ops := client(t, "crane", "ops")
	ops.MustLogin(t)
	exists := func(t testing.TB, repo, tag string) bool {
		r := ops.Run(t, []string{"DOCKER_CONFIG=" + ops.Dir, "SSL_CERT_FILE=" + ca}, "", d.cbin, "digest", ops.Ref(repo+":"+tag))
		if r.Code == 0 {
			return true
		}
		if !strings.Contains(r.Stderr, "MANIFEST_UNKNOWN") && !strings.Contains(r.Stderr, "NAME_UNKNOWN") {
			t.Fatalf("does %s:%s exist? crane digest as ops: exit %d\n%s", repo, tag, r.Code, r.Output())
		}
		return false
	}

	for _, kind := range clients.Kinds {
		t.Run(kind, func(t *testing.T) {
			tag := ":" + kind
			waldi := client(t, kind, "waldi")
			waldi.MustLogin(t)
			waldi.MustPush(t, "test/app"+tag)
			waldi.MustPull(t, "test/app"+tag)
			waldi.ExpectPushDenied(t, "prod/app"+tag+"-waldi", exists)
			clients.ExpectDenied(t, waldi.Pull(t, "prod/app:missing"), kind+" pull prod/app as waldi")

			ops := client(t, kind, "ops")
			ops.MustLogin(t)
			ops.MustPush(t, "prod/app"+tag)

			reader := client(t, kind, "reader")
			reader.MustLogin(t)
			reader.MustPull(t, "prod/app"+tag)
			reader.ExpectPushDenied(t, "prod/app"+tag+"-reader", exists)

			time.Sleep(time.Until(expiry.Add(time.Second)))
			gone := client(t, kind, "gone")
			if gone.LoginChecks() {
				clients.ExpectRefused(t, gone.Login(t), kind+" login as the expired gone")
			} else {
				gone.MustLogin(t)
			}
			clients.ExpectRefused(t, gone.Pull(t, "test/app"+tag), kind+" pull as the expired gone")
		})
	}
}

// outside runs argv in the outside namespace: clients.Runner.
func (d *deployment) outside(t testing.TB, env []string, stdin string, argv ...string) testenv.Result {
	t.Helper()
	return d.h.OutsideExec(t, freshhost.Cmd{Args: argv, Env: env, Stdin: strings.NewReader(stdin), Timeout: 5 * time.Minute})
}

// testPorts: from outside, only 80 and 443 answer. Port 22 is allowed by
// ufw but refused, since no sshd runs; the rest are dropped.
func (d *deployment) testPorts(t *testing.T) {
	ports := []int{22, 80, 443, 2375, 2376, 5000, 5001, 5002, 8080, 9101, 9102, 27017}
	answered := make([]bool, len(ports))
	var wg sync.WaitGroup
	for i, p := range ports {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			conn, err := d.h.DialContext(ctx, "tcp", net.JoinHostPort(d.h.IP.String(), fmt.Sprint(p)))
			if err == nil {
				conn.Close()
				answered[i] = true
			}
		})
	}
	wg.Wait()
	var open []int
	for i, p := range ports {
		if answered[i] {
			open = append(open, p)
		}
	}
	if !slices.Equal(open, []int{80, 443}) {
		t.Errorf("open ports from outside: %v, want [80 443]", open)
	}
}

// stepSays reports whether step n's closing line contains what.
func stepSays(out string, n int, what string) bool {
	_, after, ok := strings.Cut(out, fmt.Sprintf("[%d/9]", n))
	if !ok {
		return false
	}
	if i := strings.Index(after, "\n["); i >= 0 {
		after = after[:i]
	}
	return strings.Contains(after, what)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// testNoopInit: another init changes nothing; step 9 is skipped with
// --self-signed.
func (d *deployment) testNoopInit(t *testing.T) {
	t.Helper()
	r, took := d.init(t, "--self-signed")
	t.Logf("TIMING init again (nothing to do): %s", took.Round(time.Millisecond))
	if r.Code != 0 {
		t.Fatalf("init again: exit %d\n%s", r.Code, r.Output())
	}
	if n := strings.Count(r.Stderr, "already in place"); n != 8 {
		t.Errorf("init again: %d steps already in place, want 8\n%s", n, r.Stderr)
	}
}

// testReboot: after a reboot the stack comes back by itself and a user
// added then pushes.
func (d *deployment) testReboot(t *testing.T) {
	start := time.Now()
	d.h.Reboot(t)
	pw := d.addUser(t, "after-reboot", "--label", "full-access=reboot/*")
	if r := d.login(t, "after-reboot", pw); r.Code != 0 {
		t.Fatalf("login: %s", r.Output())
	}
	if err := testenv.Poll(3*time.Minute, 2*time.Second, func() error {
		if r := d.push(t, "after-reboot", "reboot/app:1"); r.Code != 0 {
			return fmt.Errorf("push: exit %d: %s", r.Code, lastLine(r.Output()))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("TIMING reboot to first push: %s", time.Since(start).Round(time.Millisecond))
}

// bootRegctlHost boots a fresh host, installs regctl there from its .deb
// as a user would (dpkg -i; freshhost.RegctlDeb builds it with make dist)
// and makes the registry's name resolve to the host outside.
func bootRegctlHost(t *testing.T, o freshhost.Options) *freshhost.Host {
	t.Helper()
	deb := freshhost.RegctlDeb(t)
	dst := "/root/" + filepath.Base(deb)
	o.Binds = append(o.Binds, freshhost.Bind{Src: deb, Dst: dst, ReadOnly: true})
	o.Hostnames = append(o.Hostnames, registryName)
	start := time.Now()
	h := freshhost.Boot(t, o)
	t.Logf("TIMING boot: %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	h.MustRun(t, "", "dpkg", "-i", dst)
	t.Logf("TIMING dpkg -i: %s", time.Since(start).Round(time.Millisecond))
	// The host has no man-db: check that the pages are there, not man.
	files := strings.Split(h.MustRun(t, "", "dpkg", "-L", "regctl").Stdout, "\n")
	for _, f := range []string{
		"/usr/bin/regctl",
		"/usr/share/man/man1/regctl.1.gz",
		"/usr/share/man/man1/regctl-init.1.gz",
		"/usr/share/bash-completion/completions/regctl",
		"/usr/share/zsh/vendor-completions/_regctl",
		"/usr/share/fish/vendor_completions.d/regctl.fish",
		"/usr/share/doc/regctl/regctl.example.yaml",
	} {
		if !slices.Contains(files, f) {
			t.Errorf("dpkg -L regctl lacks %s:\n%s", f, strings.Join(files, "\n"))
		}
	}
	if got := strings.TrimSpace(h.MustRun(t, "", "sh", "-c", "command -v regctl").Stdout); got != "/usr/bin/regctl" {
		t.Errorf("regctl on the host's PATH is %q, want the package's /usr/bin/regctl", got)
	}
	return h
}
