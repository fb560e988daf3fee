package clients

import (
	"crypto/sha256"
	"fmt"
	"os"
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
		OpDelete:  d.name + " removes local images only (rmi); it has no command that deletes from a registry",
		OpCatalog: d.name + " has no command that lists a registry's repositories",
	}
}

// cmd runs the tool with its storage in c.Dir.
func (d containers) cmd(t testing.TB, c *Client, stdin string, args ...string) testenv.Result {
	t.Helper()
	global := []string{
		"--root", filepath.Join(c.Dir, "storage"),
		"--runroot", runroot(t, c),
		"--storage-driver", "vfs",
	}
	if d.name == "podman" {
		global = append(global, "--tmpdir", filepath.Join(c.Dir, "tmp"), "--events-backend", "none", "--cgroup-manager", "cgroupfs")
	}
	return c.run(t, stdin, append(global, args...)...)
}

// runroot is the client's run directory: podman refuses one longer than 50
// characters, so it is /tmp/rcrun-HASH of c.Dir, removed at cleanup.
func runroot(t testing.TB, c *Client) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("rcrun-%x", sha256.Sum256([]byte(c.Dir)))[:len("rcrun-")+12])
	if _, err := os.Stat(dir); err == nil {
		return dir
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
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
	if d.name == "podman" {
		// The image the archive was loaded as keeps its manifest digest
		// among the RepoDigests, under the registry's name too, in an
		// order of its own: remove every image (the client's own storage)
		// so that the registry's is the only one.
		d.cmd(t, c, "", "rmi", "--all", "--force")
	}
	r := d.cmd(t, c, "", "pull", "-q", c.tls(t, ""), "--authfile", c.authFile(), "docker://"+ref)
	if r.Code != 0 {
		return r, ""
	}
	if d.name == "buildah" {
		return r, strings.TrimSpace(d.cmd(t, c, "", "inspect", "--type", "image", "--format", "{{.FromImageDigest}}", ref).Stdout)
	}
	// The image's own Digest may be another source's (the archive it was
	// first loaded from); its RepoDigests name the registry's (alone: see
	// above).
	repo := ref[:strings.LastIndex(ref, ":")] // repoTag always has a tag
	digests := d.cmd(t, c, "", "image", "inspect", "--format", "{{range .RepoDigests}}{{.}} {{end}}", ref).Stdout
	for _, rd := range strings.Fields(digests) {
		if name, digest, ok := strings.Cut(rd, "@"); ok && name == repo {
			return r, digest
		}
	}
	return r, ""
}

// copy pulls src and pushes it as dst: the tool has no registry-to-registry
// copy (that is skopeo's), but containers/image remembers where blobs came
// from and may mount them.
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
