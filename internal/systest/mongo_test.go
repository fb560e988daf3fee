//go:build integration

package systest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/testenv/freshhost"
)

// mongoPort is where the external FerretDB listens, on the outside end.
const mongoPort = "27017"

// TestInitFreshHostMongo: `regctl init` on a host with docker, ufw and
// fail2ban installed, with an external MongoDB (database.url): FerretDB,
// in the outside namespace on the host's gateway address, as a database
// server next to the registry host would be. The token server container
// reaches it through docker's bridge and NAT and the host's firewall;
// regctl on the host, through the store pointer init leaves.
func TestInitFreshHostMongo(t *testing.T) {
	freshhost.RequireMachine(t)
	t.Parallel()
	crane := testenv.Require(t, testenv.EnvCrane, "the path of a crane binary (go-containerregistry v0.22.1)")
	ferretdb := testenv.Require(t, testenv.EnvFerretDB, "the path of a ferretdb binary (v1.24.2)")
	a := freshhost.Cache(t)
	bin := freshhost.StaticRegctl(t)

	h := bootRegctlHost(t, freshhost.Options{
		Variant:    freshhost.Full,
		Persistent: true, // for the reboot
	})
	h.Mirror(t, a.Images.Nginx, a.Images.Registry) // compose pulls them as from Docker Hub

	storeURL := mongoStartFerretDB(t, h, ferretdb)
	d := newDeployment(t, h, crane)
	h.WriteRegctlYAML(t, registryName, "backend: mongo\nurl: \""+storeURL+"\"", "")

	r, took := d.init(t, "--self-signed")
	t.Logf("TIMING init: %s", took.Round(time.Millisecond))
	if r.Code != 0 {
		t.Fatalf("init: exit %d\n%s", r.Code, r.Output())
	}
	if got := strings.TrimSpace(string(h.ReadFile(t, "/etc/regctl/store"))); got != storeURL {
		t.Errorf("/etc/regctl/store = %q, want the external MongoDB %q", got, storeURL)
	}
	if r := h.MustRun(t, "", "docker", "ps", "--format", "{{.Names}}"); strings.Contains(r.Stdout, "mongo") {
		t.Errorf("a mongo container runs although database.url is set:\n%s", r.Output())
	}

	// The token server reached the external MongoDB through the host's
	// firewall (step 8 ran `regctl acl defaults` and created the admin in
	// its container): ufw is on, routed traffic denied by default, and
	// docker's own FORWARD rules, ahead of ufw's, let the containers out.
	if r := h.MustRun(t, "", "ufw", "status", "verbose"); !strings.Contains(r.Stdout, "Status: active") {
		t.Errorf("ufw is not active after init:\n%s", r.Stdout)
	}
	h.Run(t, "", "iptables", "-S", "FORWARD") // for the log: docker's ACCEPTs come first

	t.Run("users-and-pushes", func(t *testing.T) { mongoUsersAndPushes(t, d, bin, storeURL) })
	t.Run("only-80-and-443", d.testPorts)

	d.testNoopInit(t)

	// At boot ufw loads its rules before docker starts, the other order
	// from init's: the token server still reaches the external MongoDB.
	t.Run("reboot", d.testReboot)
	h.Run(t, "", "iptables", "-S", "FORWARD")
}

// mongoStartFerretDB starts FerretDB (SQLite backend) in h's outside
// namespace, on OuterIP, and returns the store URL regctl.yaml names.
func mongoStartFerretDB(t *testing.T, h *freshhost.Host, bin string) string {
	t.Helper()
	dir := t.TempDir()
	return startOutsideFerretDB(t, h, "ferretdb-"+h.Name, bin, dir, "--handler=sqlite", "--sqlite-url=file:"+dir+"/")
}

// startOutsideFerretDB starts FerretDB (bin, with its handler's flags) in
// h's outside namespace on OuterIP, its state in dir, waits until it
// accepts connections and returns the store URL regctl.yaml names.
func startOutsideFerretDB(t *testing.T, h *freshhost.Host, name, bin, dir string, handler ...string) string {
	t.Helper()
	addr := net.JoinHostPort(h.OuterIP.String(), mongoPort)
	args := append(handler, "--listen-addr="+addr, "--state-dir="+dir, "--debug-addr=-", "--telemetry=disable")
	p := h.StartOutside(t, name, nil, bin, args...)
	// Connect from the outside namespace: OuterIP is no local address in
	// the test process's own.
	p.WaitReady(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		c, err := h.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return "mongodb://" + addr + "/regctl"
}

// mongoUsersAndPushes: a user made by `regctl user add` on the host (no
// --store: the pointer init wrote) pushes within its grant and not outside
// it, and is in the external MongoDB, as regctl outside the host sees it.
func mongoUsersAndPushes(t *testing.T, d *deployment, bin, storeURL string) {
	pw := d.addUser(t, "waldi", "--label", "full-access=test/*")
	if r := d.mustRegctl(t, "", "user", "list"); !strings.Contains(r.Stdout, "waldi") {
		t.Errorf("user list on the host does not show waldi:\n%s", r.Output())
	}
	if r := d.login(t, "waldi", pw); r.Code != 0 {
		t.Fatalf("crane auth login waldi: %s", r.Output())
	}
	// Users apply within the token server's reload interval.
	if err := testenv.Poll(60*time.Second, time.Second, func() error {
		if r := d.push(t, "waldi", "test/app:1"); r.Code != 0 {
			return fmt.Errorf("waldi pushes test/app:1: exit %d: %s", r.Code, lastLine(r.Output()))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if r := d.digest(t, "waldi", "test/app:1"); r.Code != 0 {
		t.Errorf("digest test/app:1: %s", r.Output())
	}
	if r := d.push(t, "waldi", "prod/app:1"); !denied(r) {
		t.Errorf("waldi pushed prod/app:1 outside its grant: exit %d %s", r.Code, lastLine(r.Output()))
	}
	// The first admin (created by init in the token server's container)
	// logs in: it sees test/app:1, and no prod/app:1.
	if r := d.login(t, "admin", d.admin); r.Code != 0 {
		t.Fatalf("crane auth login admin: %s", r.Output())
	}
	if r := d.digest(t, "admin", "test/app:1"); r.Code != 0 {
		t.Errorf("admin: digest test/app:1: %s", r.Output())
	}
	if r := d.digest(t, "admin", "prod/app:1"); r.Code == 0 {
		t.Errorf("prod/app:1 exists after waldi's refused push: %s", r.Stdout)
	}

	// The store itself, read from the outside namespace (where FerretDB
	// listens) by a regctl there: the admin init created and waldi.
	r := d.h.OutsideExec(t, freshhost.Cmd{
		Args:    []string{bin, "user", "list", "--store", storeURL},
		Env:     []string{"HOME=" + t.TempDir()},
		Timeout: 2 * time.Minute,
	})
	if r.Code != 0 {
		t.Fatalf("regctl user list --store %s outside: exit %d\n%s", storeURL, r.Code, r.Output())
	}
	for _, user := range []string{"waldi", "admin"} {
		if !strings.Contains(r.Stdout, user) {
			t.Errorf("the external MongoDB has no user %s:\n%s", user, r.Stdout)
		}
	}
}
