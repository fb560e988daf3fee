package clients

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/regctl/regctl/internal/testenv"
)

// oras pushes and pulls OCI artifacts: files, not images. Its credentials
// live in c.Dir/config.json (--registry-config).
type oras struct{}

// ArtifactType is the artifact type oras pushes.
const ArtifactType = "application/vnd.regctl.interop.test"

func (oras) binary(t testing.TB) string {
	return testenv.RequireBinary(t, testenv.EnvOras, "oras", "oras v1.3.6 (scripts/test-deps.sh)")
}

func (oras) env(*Client) []string { return nil }

func (oras) limits() map[Op]string { return nil }

func (oras) config(c *Client) string { return filepath.Join(c.Dir, "config.json") }

// flags are the flags of a command that talks to the registry.
func (d oras) flags(c *Client, args ...string) []string {
	// oras speaks plain HTTP to localhost unless told not to.
	args = append(args, "--registry-config", d.config(c), "--plain-http=false")
	if c.CA == "" {
		return append(args, "--insecure")
	}
	return append(args, "--ca-file", c.CA)
}

func (d oras) login(t testing.TB, c *Client) testenv.Result {
	return c.run(t, c.PW, d.flags(c, "login", "-u", c.User, "--password-stdin", c.Host)...)
}

// push pushes three files, each its own layer, with distinct content.
func (d oras) push(t testing.TB, c *Client, repoTag string) testenv.Result {
	dir, err := os.MkdirTemp(c.Dir, "artifact")
	if err != nil {
		t.Fatal(err)
	}
	args := d.flags(c, "push", "--artifact-type", ArtifactType, c.Ref(repoTag))
	for i := range 3 {
		f := fmt.Sprintf("part-%d.txt", i)
		if err := os.WriteFile(filepath.Join(dir, f), []byte("regctl interop "+testenv.RandomHex(16)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
	}
	// The files' names (their titles, where pull writes them) are
	// relative to dir: oras push runs there, through env -C.
	run := c.Run
	if run == nil {
		run = Local
	}
	return run(t, c.environ(), "", append([]string{"env", "-C", dir, c.Bin}, args...)...)
}

func (d oras) pull(t testing.TB, c *Client, repoTag, out string) (testenv.Result, string) {
	r := c.run(t, "", d.flags(c, "pull", "-o", out, c.Ref(repoTag))...)
	return r, digestPrinted(r.Stdout)
}

func (d oras) copy(t testing.TB, c *Client, src, dst string) testenv.Result {
	args := []string{"cp", "--from-registry-config", d.config(c), "--to-registry-config", d.config(c), "--from-plain-http=false", "--to-plain-http=false"}
	if c.CA == "" {
		args = append(args, "--from-insecure", "--to-insecure")
	} else {
		args = append(args, "--from-ca-file", c.CA, "--to-ca-file", c.CA)
	}
	return c.run(t, "", append(args, c.Ref(src), c.Ref(dst))...)
}

func (d oras) delete(t testing.TB, c *Client, repo, digest string) testenv.Result {
	return c.run(t, "", d.flags(c, "manifest", "delete", "--force", c.Host+"/"+repo+"@"+digest)...)
}

func (d oras) catalog(t testing.TB, c *Client) testenv.Result {
	return c.run(t, "", d.flags(c, "repo", "ls", c.Host)...)
}

func (d oras) storeIdentityToken(t testing.TB, c *Client, token string) {
	writeDockerConfig(t, d.config(c), c.Host, c.User, token)
}
