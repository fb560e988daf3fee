package clients

import (
	"path/filepath"
	"testing"

	"github.com/regctl/regctl/internal/testenv"
)

// skopeo copies between transports; its registry side is containers/image.
type skopeo struct{}

func (skopeo) binary(t testing.TB) string {
	return testenv.RequireBinary(t, "", "skopeo", "Debian's skopeo package")
}

func (skopeo) env(c *Client) []string { return []string{"REGISTRY_AUTH_FILE=" + c.authFile()} }

func (skopeo) limits() map[Op]string {
	return map[Op]string{OpCatalog: "skopeo lists a repository's tags (list-tags), not the registry's repositories"}
}

func (skopeo) login(t testing.TB, c *Client) testenv.Result {
	return c.run(t, c.PW, "login", c.tls(t, ""), "--authfile", c.authFile(), "-u", c.User, "--password-stdin", c.Host)
}

func (skopeo) push(t testing.TB, c *Client, repoTag string) testenv.Result {
	return c.run(t, "", "--insecure-policy", "copy", c.tls(t, "dest"), "--dest-authfile", c.authFile(),
		"docker-archive:"+c.Image, "docker://"+c.Ref(repoTag))
}

func (skopeo) pull(t testing.TB, c *Client, repoTag, out string) (testenv.Result, string) {
	r := c.run(t, "", "--insecure-policy", "copy", c.tls(t, "src"), "--src-authfile", c.authFile(),
		"docker://"+c.Ref(repoTag), "dir:"+out)
	return r, fileDigest(filepath.Join(out, "manifest.json"))
}

func (skopeo) copy(t testing.TB, c *Client, src, dst string) testenv.Result {
	return c.run(t, "", "--insecure-policy", "copy", c.tls(t, "src"), c.tls(t, "dest"),
		"--src-authfile", c.authFile(), "--dest-authfile", c.authFile(),
		"docker://"+c.Ref(src), "docker://"+c.Ref(dst))
}

func (skopeo) delete(t testing.TB, c *Client, repo, digest string) testenv.Result {
	return c.run(t, "", "delete", c.tls(t, ""), "--authfile", c.authFile(), "docker://"+c.Host+"/"+repo+"@"+digest)
}

func (skopeo) storeIdentityToken(t testing.TB, c *Client, token string) {
	writeDockerConfig(t, c.authFile(), c.Host, c.User, token)
}
