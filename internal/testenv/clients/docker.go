package clients

import (
	"path/filepath"
	"regexp"
	"testing"

	"github.com/regctl/regctl/internal/testenv"
)

// docker is the docker CLI; the daemon (c.Env's DOCKER_HOST) talks to the
// registry.
type docker struct{}

func (docker) binary(t testing.TB) string {
	return testenv.RequireBinary(t, "", "docker", "the docker CLI")
}

func (docker) env(c *Client) []string { return []string{"DOCKER_CONFIG=" + c.Dir} }

func (docker) limits() map[Op]string {
	return map[Op]string{
		OpDelete:  "the docker CLI deletes local images only (docker rmi); it has no command that deletes from a registry",
		OpCatalog: "the docker CLI has no command that lists a registry's repositories",
	}
}

func (docker) login(t testing.TB, c *Client) testenv.Result {
	return c.run(t, c.PW, "login", c.Host, "-u", c.User, "--password-stdin")
}

// loaded matches what docker load prints for an image it loaded.
var loaded = regexp.MustCompile(`Loaded image(?: ID)?: (\S+)`)

// push imports c.Layer as the image, or loads c.Image if there is no
// Layer, and pushes it.
func (docker) push(t testing.TB, c *Client, repoTag string) testenv.Result {
	ref := c.Ref(repoTag)
	if c.Layer != "" {
		if r := c.run(t, "", "import", c.Layer, ref); r.Code != 0 {
			t.Fatalf("docker import: exit %d\n%s", r.Code, r.Output())
		}
	} else {
		r := c.run(t, "", "load", "-i", c.Image)
		m := loaded.FindStringSubmatch(r.Stdout)
		if r.Code != 0 || m == nil {
			t.Fatalf("docker load: exit %d\n%s", r.Code, r.Output())
		}
		if r := c.run(t, "", "tag", m[1], ref); r.Code != 0 {
			t.Fatalf("docker tag: exit %d\n%s", r.Code, r.Output())
		}
	}
	return c.run(t, "", "push", ref)
}

func (docker) pull(t testing.TB, c *Client, repoTag, _ string) (testenv.Result, string) {
	ref := c.Ref(repoTag)
	c.run(t, "", "rmi", ref) // a local copy would hide what the registry says
	r := c.run(t, "", "pull", ref)
	return r, digestPrinted(r.Stdout)
}

// copy pulls src and pushes it as dst: the daemon remembers where the
// layers came from and asks the registry to mount them.
func (d docker) copy(t testing.TB, c *Client, src, dst string) testenv.Result {
	if r, _ := d.pull(t, c, src, ""); r.Code != 0 {
		return r
	}
	if r := c.run(t, "", "tag", c.Ref(src), c.Ref(dst)); r.Code != 0 {
		return r
	}
	return c.run(t, "", "push", c.Ref(dst))
}

func (docker) storeIdentityToken(t testing.TB, c *Client, token string) {
	writeDockerConfig(t, filepath.Join(c.Dir, "config.json"), c.Host, c.User, token)
}
