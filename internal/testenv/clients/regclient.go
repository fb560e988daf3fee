package clients

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/regctl/regctl/internal/testenv"
)

// regclient is regclient's CLI, whose binary is also called regctl: it is
// installed as regclient (scripts/test-deps.sh). Its settings would be
// found through REGCTL_CONFIG or ~/.regctl, names regctl's own could
// collide with, so both point into c.Dir, and its docker credentials
// (DOCKER_CONFIG) too. The CA comes through SSL_CERT_FILE; `regclient
// registry set --cacert` would make a token request without credentials
// on every call.
type regclient struct{}

func (regclient) binary(t testing.TB) string {
	return testenv.RequireBinary(t, testenv.EnvRegclient, "regclient", "regclient's regctl v0.11.7 as regclient (scripts/test-deps.sh)")
}

func (regclient) env(c *Client) []string {
	return []string{
		"REGCTL_CONFIG=" + filepath.Join(c.Dir, "regclient", "config.json"),
		"DOCKER_CONFIG=" + c.Dir,
	}
}

func (regclient) limits() map[Op]string { return nil }

func (regclient) login(t testing.TB, c *Client) testenv.Result {
	return c.run(t, c.PW, "registry", "login", c.Host, "-u", c.User, "--pass-stdin")
}

func (regclient) push(t testing.TB, c *Client, repoTag string) testenv.Result {
	return c.run(t, "", "image", "import", c.Ref(repoTag), c.Image)
}

func (regclient) pull(t testing.TB, c *Client, repoTag, out string) (testenv.Result, string) {
	tarball := filepath.Join(out, "image.tar")
	r := c.run(t, "", "image", "export", c.Ref(repoTag), tarball)
	return r, ociTarDigest(tarball)
}

func (regclient) copy(t testing.TB, c *Client, src, dst string) testenv.Result {
	return c.run(t, "", "image", "copy", c.Ref(src), c.Ref(dst))
}

func (regclient) delete(t testing.TB, c *Client, repo, digest string) testenv.Result {
	return c.run(t, "", "manifest", "delete", c.Host+"/"+repo+"@"+digest)
}

func (regclient) catalog(t testing.TB, c *Client) testenv.Result {
	return c.run(t, "", "repo", "ls", c.Host)
}

func (regclient) storeIdentityToken(t testing.TB, c *Client, token string) {
	writeDockerConfig(t, filepath.Join(c.Dir, "config.json"), c.Host, c.User, token)
}

// ociTarDigest returns the digest of the first manifest in the index.json
// of the OCI layout tarball at path, or "".
func ociTarDigest(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			return ""
		}
		if filepath.Clean(h.Name) != "index.json" {
			continue
		}
		var idx struct {
			Manifests []struct{ Digest string } `json:"manifests"`
		}
		b, err := io.ReadAll(tr)
		if err != nil || json.Unmarshal(b, &idx) != nil || len(idx.Manifests) == 0 {
			return ""
		}
		return idx.Manifests[0].Digest
	}
}
