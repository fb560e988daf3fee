package clients

import (
	"path/filepath"
	"testing"

	"github.com/regctl/regctl/internal/testenv"
)

// crane is go-containerregistry's CLI; its binary is given to New.
type crane struct{}

func (crane) binary(testing.TB) string { return "" }

func (crane) env(c *Client) []string { return []string{"DOCKER_CONFIG=" + c.Dir} }

func (crane) limits() map[Op]string {
	return map[Op]string{OpLogin: "crane auth login only writes the credentials down"}
}

// flags are crane's flags: --insecure without a CA (SSL_CERT_FILE names
// the CA otherwise).
func (crane) flags(c *Client, args ...string) []string {
	if c.CA == "" {
		return append([]string{args[0], "--insecure"}, args[1:]...)
	}
	return args
}

func (crane) login(t testing.TB, c *Client) testenv.Result {
	return c.run(t, c.PW, "auth", "login", c.Host, "-u", c.User, "--password-stdin")
}

func (d crane) push(t testing.TB, c *Client, repoTag string) testenv.Result {
	return c.run(t, "", d.flags(c, "push", c.Image, c.Ref(repoTag))...)
}

func (d crane) pull(t testing.TB, c *Client, repoTag, out string) (testenv.Result, string) {
	layout := filepath.Join(out, "oci")
	r := c.run(t, "", d.flags(c, "pull", "--format", "oci", c.Ref(repoTag), layout)...)
	return r, ociLayoutDigest(layout)
}

func (d crane) copy(t testing.TB, c *Client, src, dst string) testenv.Result {
	return c.run(t, "", d.flags(c, "copy", c.Ref(src), c.Ref(dst))...)
}

func (d crane) delete(t testing.TB, c *Client, repo, digest string) testenv.Result {
	return c.run(t, "", d.flags(c, "delete", c.Host+"/"+repo+"@"+digest)...)
}

func (d crane) catalog(t testing.TB, c *Client) testenv.Result {
	return c.run(t, "", d.flags(c, "catalog", c.Host)...)
}

func (crane) storeIdentityToken(t testing.TB, c *Client, token string) {
	writeDockerConfig(t, filepath.Join(c.Dir, "config.json"), c.Host, c.User, token)
}
