package clients

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/testenv"
)

// ctr is containerd's CLI, talking to the containerd at c.Containerd in a
// namespace of its own. It has no login and no credential store: it takes
// --user on each command and reads the password from a terminal only
// (containerd's console.Current panics without one), so the password is
// typed into a pseudo-terminal (testenv.RunTTY), never put in argv. It
// runs on this machine only (c.Run must be nil).
type ctr struct{}

func (ctr) binary(t testing.TB) string {
	return testenv.RequireBinary(t, "", "ctr", "Debian's containerd package")
}

// env: pulls unpack into the native snapshotter (a copy), which works
// anywhere; overlayfs may not.
func (ctr) env(*Client) []string { return []string{"CONTAINERD_SNAPSHOTTER=native"} }

func (ctr) limits() map[Op]string {
	return map[Op]string{
		OpLogin:         "ctr has no login: it takes --user on every command and asks for the password on a terminal",
		OpDelete:        "ctr images rm removes local images only; ctr has no command that deletes from a registry",
		OpCatalog:       "ctr has no command that lists a registry's repositories",
		OpIdentityToken: "ctr stores no credentials; its --refresh flag would put the refresh token in argv",
	}
}

// cmd runs ctr against c.Containerd in the client's namespace; with auth,
// as c.User with c.PW typed at the password prompt.
func (ctr) cmd(t testing.TB, c *Client, auth bool, args ...string) testenv.Result {
	t.Helper()
	if c.Run != nil {
		t.Fatalf("clients: ctr runs on this machine only")
	}
	if c.Containerd == "" {
		t.Fatalf("clients: ctr needs Client.Containerd, a containerd socket (StartContainerd)")
	}
	global := []string{"-a", c.Containerd, "-n", "regctl-" + filepath.Base(c.Dir)}
	if auth {
		args = append(args[:2:2], append(c.remoteFlags(t), args[2:]...)...)
	}
	return testenv.RunTTY(t, c.environ(), c.PW+"\n", c.Bin, append(global, args...)...)
}

// remoteFlags are ctr's flags for a command that talks to the registry:
// the user, and a hosts directory that names https and the CA, since ctr
// speaks plain HTTP to localhost by default.
func (c *Client) remoteFlags(t testing.TB) []string {
	t.Helper()
	tls := "skip_verify = true"
	if c.CA != "" {
		tls = fmt.Sprintf("ca = %q", c.CA)
	}
	hosts := filepath.Join(c.Dir, "hosts")
	conf := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  %s\n",
		"https://"+c.Host, "https://"+c.Host, tls)
	if err := os.MkdirAll(filepath.Join(hosts, c.Host), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hosts, c.Host, "hosts.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--user", c.User, "--hosts-dir", hosts}
}

// deniedWords: ctr reports a refusal with the registry's error code only.
func (ctr) deniedWords() []string { return []string{"insufficient_scope"} }

func (ctr) login(testing.TB, *Client) testenv.Result { return testenv.Result{} }

func (d ctr) push(t testing.TB, c *Client, repoTag string) testenv.Result {
	// The archive's image is localhost/regctl-e2e:latest (MakeImage); it
	// names no platform, which the platform filter would drop.
	if r := d.cmd(t, c, false, "images", "import", "--no-unpack", "--all-platforms", c.Image); r.Code != 0 {
		t.Fatalf("ctr images import %s: exit %d\n%s", c.Image, r.Code, r.Output())
	}
	return d.pushAs(t, c, "localhost/regctl-e2e:latest", repoTag)
}

func (d ctr) pushAs(t testing.TB, c *Client, local, repoTag string) testenv.Result {
	if r := d.cmd(t, c, false, "images", "tag", "--force", local, c.Ref(repoTag)); r.Code != 0 {
		return r
	}
	return d.cmd(t, c, true, "images", "push", c.Ref(repoTag))
}

func (d ctr) pull(t testing.TB, c *Client, repoTag, _ string) (testenv.Result, string) {
	ref := c.Ref(repoTag)
	d.cmd(t, c, false, "images", "rm", ref) // a local copy would hide what the registry says
	r := d.cmd(t, c, true, "images", "pull", ref)
	if r.Code != 0 {
		return r, ""
	}
	// REF TYPE DIGEST SIZE PLATFORMS LABELS
	for _, line := range strings.Split(d.cmd(t, c, false, "images", "ls").Stdout, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == ref {
			return r, f[2]
		}
	}
	return r, ""
}

// copy pulls src and pushes it as dst: ctr has no registry-to-registry
// copy, but containerd labels where content came from and may mount it.
func (d ctr) copy(t testing.TB, c *Client, src, dst string) testenv.Result {
	if r, _ := d.pull(t, c, src, ""); r.Code != 0 {
		return r
	}
	return d.pushAs(t, c, c.Ref(src), dst)
}
