package clients

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// printedDigest matches the "Digest: sha256:…" line docker, oras and helm
// print after a pull.
var printedDigest = regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`)

// digestPrinted returns the digest out names in a "Digest: " line, or "".
func digestPrinted(out string) string {
	if m := printedDigest.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// fileDigest returns the sha256 digest of the file at path (a manifest
// skopeo wrote), or "" if it cannot be read.
func fileDigest(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}

// ociLayoutDigest returns the digest of the first manifest in the OCI
// image layout dir (its index.json), or "".
func ociLayoutDigest(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return ""
	}
	var idx struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	if json.Unmarshal(b, &idx) != nil || len(idx.Manifests) == 0 {
		return ""
	}
	return idx.Manifests[0].Digest
}

// writeDockerConfig writes a docker config.json (or containers auth.json,
// the same format) at path whose only credential for host is the refresh
// token token, stored as docker login stores one: "identitytoken", with
// the user name and no password in "auth".
func writeDockerConfig(t testing.TB, path, host, user, token string) {
	t.Helper()
	cfg := map[string]any{"auths": map[string]any{host: map[string]string{
		"auth":          base64.StdEncoding.EncodeToString([]byte(user + ":")),
		"identitytoken": token,
	}}}
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o700)
	}
	if err == nil {
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		t.Fatalf("clients: write %s: %v", path, err)
	}
}

// caDir returns a directory holding c.CA as ca.crt, the layout of the
// containers tools' --cert-dir and of docker's certs.d/HOST.
func (c *Client) caDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(c.Dir, "certs")
	pem, err := os.ReadFile(c.CA)
	if err == nil {
		err = os.MkdirAll(dir, 0o700)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "ca.crt"), pem, 0o600)
	}
	if err != nil {
		t.Fatalf("clients: %s's CA directory: %v", c.Kind, err)
	}
	return dir
}

// tls returns a containers tool's TLS flag for direction ("src", "dest",
// or "" for the commands with one registry): the CA directory, or no
// verification without a CA.
func (c *Client) tls(t testing.TB, direction string) string {
	t.Helper()
	prefix := "--"
	if direction != "" {
		prefix += direction + "-"
	}
	if c.CA == "" {
		return prefix + "tls-verify=false"
	}
	return prefix + "cert-dir=" + c.caDir(t)
}
