package clients

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/testenv"
)

// containers is podman or buildah (name): containers/image and
// containers/storage, with a storage of their own (vfs) in c.Dir, so
// nothing touches the host's /var/lib/containers. They run as root.
type containers struct{ name string }

func (d containers) binary(t testing.TB) string {
	return testenv.RequireBinary(t, "", d.name, "Debian's "+d.name+" package")
}

func (containers) env(c *Client) []string { return []string{"REGISTRY_AUTH_FILE=" + c.authFile()} }

func (d containers) limits() map[Op]string {
	return map[Op]string{
		OpCopy:    d.name + " has no registry-to-registry copy (that is skopeo's): the copy is a pull and a push, which containers/image may turn into a blob mount",
		OpDelete:  d.name + " removes local images only (rmi); it has no command that deletes from a registry",
		OpCatalog: d.name + " has no command that lists a registry's repositories",
	}
}

// cmd runs the tool with its storage in c.Dir.
func (d containers) cmd(t testing.TB, c *Client, stdin string, args ...string) testenv.Result {
	t.Helper()
	global := []string{
		"--root", filepath.Join(c.Dir, "storage"),
		"--runroot", filepath.Join(c.Dir, "run"),
		"--storage-driver", "vfs",
	}
	if d.name == "podman" {
		global = append(global, "--tmpdir", filepath.Join(c.Dir, "tmp"), "--events-backend", "none", "--cgroup-manager", "cgroupfs")
	}
	return c.run(t, stdin, append(global, args...)...)
}

func (d containers) login(t testing.TB, c *Client) testenv.Result {
	return d.cmd(t, c, c.PW, "login", c.tls(t, ""), "--authfile", c.authFile(), "-u", c.User, "--password-stdin", c.Host)
}

// id returns the image ID, the last line pull -q printed.
func id(r testenv.Result) string {
	lines := strings.Fields(r.Stdout)
	if r.Code != 0 || len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

func (d containers) push(t testing.TB, c *Client, repoTag string) testenv.Result {
	r := d.cmd(t, c, "", "pull", "-q", "docker-archive:"+c.Image)
	img := id(r)
	if img == "" {
		t.Fatalf("%s pull docker-archive:%s: exit %d\n%s", d.name, c.Image, r.Code, r.Output())
	}
	return d.pushImage(t, c, img, repoTag)
}

func (d containers) pushImage(t testing.TB, c *Client, img, repoTag string) testenv.Result {
	return d.cmd(t, c, "", "push", c.tls(t, ""), "--authfile", c.authFile(), img, "docker://"+c.Ref(repoTag))
}

func (d containers) pull(t testing.TB, c *Client, repoTag, _ string) (testenv.Result, string) {
	ref := c.Ref(repoTag)
	d.cmd(t, c, "", "rmi", "-f", ref) // a local copy would hide what the registry says
	r := d.cmd(t, c, "", "pull", "-q", c.tls(t, ""), "--authfile", c.authFile(), "docker://"+ref)
	if r.Code != 0 {
		return r, ""
	}
	format := []string{"image", "inspect", "--format", "{{.Digest}}", ref}
	if d.name == "buildah" {
		format = []string{"inspect", "--type", "image", "--format", "{{.FromImageDigest}}", ref}
	}
	return r, strings.TrimSpace(d.cmd(t, c, "", format...).Stdout)
}

func (d containers) copy(t testing.TB, c *Client, src, dst string) testenv.Result {
	r := d.cmd(t, c, "", "pull", "-q", c.tls(t, ""), "--authfile", c.authFile(), "docker://"+c.Ref(src))
	if id(r) == "" {
		return r
	}
	return d.pushImage(t, c, id(r), dst)
}

func (containers) storeIdentityToken(t testing.TB, c *Client, token string) {
	writeDockerConfig(t, c.authFile(), c.Host, c.User, token)
}
