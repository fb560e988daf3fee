package clients

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/testenv"
)

// helm (v4) pushes and pulls charts in OCI registries. A chart is pushed
// to oci://HOST/DIR as NAME:VERSION, so repoTag "DIR/NAME:TAG" becomes a
// chart NAME at version TAG, which must be a semantic version. Its
// settings, cache and registry credentials live in c.Dir.
type helm struct{}

func (helm) binary(t testing.TB) string {
	return testenv.RequireBinary(t, testenv.EnvHelm, "helm", "helm v4.3.2 (scripts/test-deps.sh)")
}

func (helm) env(c *Client) []string {
	dir := filepath.Join(c.Dir, "helm")
	return []string{
		"HELM_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"HELM_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"HELM_DATA_HOME=" + filepath.Join(dir, "data"),
		"HELM_REGISTRY_CONFIG=" + filepath.Join(dir, "registry.json"),
	}
}

func (helm) limits() map[Op]string {
	return map[Op]string{
		OpCopy:    "helm has no copy between repositories",
		OpDelete:  "helm has no command that deletes a chart from a registry",
		OpCatalog: "helm has no command that lists a registry's repositories",
	}
}

// tls is helm's TLS flag.
func (helm) tls(c *Client) string {
	if c.CA == "" {
		return "--insecure-skip-tls-verify"
	}
	return "--ca-file=" + c.CA
}

func (d helm) login(t testing.TB, c *Client) testenv.Result {
	return c.run(t, c.PW, "registry", "login", c.Host, "-u", c.User, "--password-stdin", d.tls(c))
}

// semver is what helm takes as a chart version (and thus as a tag).
var semver = regexp.MustCompile(`^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)

func (d helm) push(t testing.TB, c *Client, repoTag string) testenv.Result {
	repo, version := splitRepoTag(t, repoTag)
	chart := d.chart(t, c, path.Base(repo), version)
	return c.run(t, "", "push", chart, "oci://"+c.Host+"/"+path.Dir(repo), d.tls(c))
}

// chart packages a chart name at version and returns the .tgz.
func (helm) chart(t testing.TB, c *Client, name, version string) string {
	dir, err := os.MkdirTemp(c.Dir, "chart")
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, name)
	files := map[string]string{
		"Chart.yaml":               fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\ntype: application\n", name, version),
		"values.yaml":              "note: " + testenv.RandomHex(8) + "\n",
		"templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  note: {{ .Values.note | quote }}\n",
	}
	for f, content := range files {
		p := filepath.Join(src, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if r := c.run(t, "", "package", src, "-d", dir); r.Code != 0 {
		t.Fatalf("helm package: exit %d\n%s", r.Code, r.Output())
	}
	return filepath.Join(dir, name+"-"+version+".tgz")
}

func (d helm) pull(t testing.TB, c *Client, repoTag, out string) (testenv.Result, string) {
	repo, version := splitRepoTag(t, repoTag)
	r := c.run(t, "", "pull", "oci://"+c.Host+"/"+repo, "--version", version, "-d", out, d.tls(c))
	return r, digestPrinted(r.Output())
}

func (helm) storeIdentityToken(t testing.TB, c *Client, token string) {
	writeDockerConfig(t, filepath.Join(c.Dir, "helm", "registry.json"), c.Host, c.User, token)
}

// splitRepoTag splits "repo:tag" for helm, whose tag is a chart version.
func splitRepoTag(t testing.TB, repoTag string) (repo, version string) {
	t.Helper()
	i := strings.LastIndex(repoTag, ":")
	if i < 0 || !semver.MatchString(repoTag[i+1:]) {
		t.Fatalf("helm: %q: the tag must be a chart version (a semantic version such as 1.0.0-x)", repoTag)
	}
	return repoTag[:i], repoTag[i+1:]
}
