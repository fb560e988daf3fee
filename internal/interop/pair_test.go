//go:build integration

package interop

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/testenv/clients"
)

// manifestAccept is every manifest type the clients push.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

// do sends a request through nginx and returns the response with its
// body read: target is a path on the stack or an absolute URL, tok (if
// not "") a bearer token, hdr more header names and values, in pairs.
func (r *pairEnv) do(t testing.TB, method, target, tok, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	if strings.HasPrefix(target, "/") {
		target = "https://" + r.stack.Host + target
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", harnessUA)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := r.https().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return resp, b
}

// token asks regctl serve, through nginx, for a token for user with the
// scopes; it returns the HTTP status and the token response.
func (r *pairEnv) token(t testing.TB, user, pw string, form url.Values) (int, map[string]any) {
	t.Helper()
	form.Set("service", r.service)
	if form.Get("grant_type") == "" {
		form.Set("grant_type", "password")
		form.Set("username", user)
		form.Set("password", pw)
		form.Set("client_id", "regctl-interop")
	}
	resp, b := r.do(t, http.MethodPost, "/auth/token", "", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body
}

// bearer is a registry token for user with scopes (space-separated).
func (r *pairEnv) bearer(t testing.TB, user, scopes string) string {
	t.Helper()
	status, body := r.token(t, user, r.users.pw[user], url.Values{"scope": {scopes}})
	tok, _ := body["access_token"].(string)
	if status != http.StatusOK || tok == "" {
		t.Fatalf("token for %s (%s): status %d", user, scopes, status)
	}
	return tok
}

// headManifest is the status and digest of HEAD repo:ref with tok.
func (r *pairEnv) headManifest(t testing.TB, tok, repo, ref string) (int, string) {
	t.Helper()
	resp, _ := r.do(t, http.MethodHead, "/v2/"+repo+"/manifests/"+ref, tok, "", "Accept", manifestAccept)
	return resp.StatusCode, resp.Header.Get("Docker-Content-Digest")
}

// digest is the digest the registry holds for repo:ref, "" if none
// (asked as admin, through nginx).
func (r *pairEnv) digest(t testing.TB, repo, ref string) string {
	t.Helper()
	switch status, d := r.headManifest(t, r.bearer(t, "admin", "repository:"+repo+":pull"), repo, ref); status {
	case http.StatusOK:
		return d
	case http.StatusNotFound:
		return ""
	default:
		t.Fatalf("HEAD %s:%s as admin: status %d", repo, ref, status)
	}
	return ""
}

// testNoFromGrant: nosrc, with push on mirror/* and no pull on the
// source, asks for a token covering a mount from interop/…: the token
// grants nothing on the source, and the registry answers the mount with
// an upload (202), not a mount (201).
func (r *pairEnv) testNoFromGrant(t *testing.T) {
	src := "interop/nofrom/app"
	// A blob in the source, pushed by rw.
	blob := []byte("regctl interop mount source " + testenv.RandomHex(8))
	digest := fmt.Sprintf("sha256:%x", sha256Sum(blob))
	rw := r.bearer(t, "writer", "repository:"+src+":pull,push")
	r.uploadBlob(t, rw, src, digest, blob)

	status, body := r.token(t, "nosrc", r.users.pw["nosrc"], url.Values{"scope": {"repository:mirror/nofrom/app:pull,push repository:" + src + ":pull"}})
	if status != http.StatusOK {
		t.Fatalf("token for nosrc: status %d", status)
	}
	tok, _ := body["access_token"].(string)
	if access := claims(t, tok); strings.Contains(access, src) {
		t.Errorf("nosrc's token grants access on %s: %s", src, access)
	}
	// distribution answers 401 (the token lacks the source's pull) or
	// starts an upload (202); either way nothing is mounted.
	if got := r.mount(t, tok, "mirror/nofrom/app", digest, src); got == http.StatusCreated {
		t.Errorf("mount from %s as nosrc, who may not pull it: status 201, the blob was mounted", src)
	}
	if r.blobExists(t, "mirror/nofrom/app", digest) {
		t.Errorf("mount from %s as nosrc: mirror/nofrom/app has the blob", src)
	}
	// The same with rw's rights mounts.
	tok = r.bearer(t, "writer", "repository:interop/nofrom/copy:pull,push repository:"+src+":pull")
	if got := r.mount(t, tok, "interop/nofrom/copy", digest, src); got != http.StatusCreated {
		t.Errorf("mount from %s by a user who may pull it: status %d, want 201", src, got)
	}
	r.results.set(r.reg, "(HTTP)", "no-from-grant", resultOf(t))
}

// mount asks the registry to mount blob digest from src into repo and
// returns the status.
func (r *pairEnv) mount(t *testing.T, tok, repo, digest, src string) int {
	t.Helper()
	resp, _ := r.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?mount="+digest+"&from="+src, tok, "")
	return resp.StatusCode
}

// blobExists reports whether repo has the blob digest (asked as admin).
func (r *pairEnv) blobExists(t *testing.T, repo, digest string) bool {
	t.Helper()
	resp, _ := r.do(t, http.MethodHead, "/v2/"+repo+"/blobs/"+digest, r.bearer(t, "admin", "repository:"+repo+":pull"), "")
	return resp.StatusCode == http.StatusOK
}

// uploadBlob pushes blob to repo in one monolithic upload.
func (r *pairEnv) uploadBlob(t *testing.T, tok, repo, digest string, blob []byte) {
	t.Helper()
	resp, _ := r.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", tok, "")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("start upload to %s: status %d", repo, resp.StatusCode)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	if !u.IsAbs() {
		u.Scheme, u.Host = "https", r.stack.Host
	}
	if resp, _ = r.do(t, http.MethodPut, u.String(), tok, string(blob), "Content-Type", "application/octet-stream"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload to %s: status %d", repo, resp.StatusCode)
	}
}

// newClient is a client of kind for user on the stack, with its CA.
func (r *pairEnv) newClient(t *testing.T, kind, user, pw string) *clients.Client {
	t.Helper()
	drv := kind
	if kind == dockerContainerd {
		drv = "docker"
	}
	c := clients.New(t, drv, r.crane, r.stack.Host, user, pw, t.TempDir())
	c.Image, c.CA, c.Containerd = r.image, r.ca, r.containerd
	switch kind {
	case "docker":
		c.Env = []string{"DOCKER_HOST=" + r.dockerd}
	case dockerContainerd:
		c.Env = []string{"DOCKER_HOST=" + r.containerdDocker}
	}
	return c
}

// client is a client of kind acting as kind's user of role (rw, ro, del).
func (r *pairEnv) client(t *testing.T, kind, role string) *clients.Client {
	t.Helper()
	u := kindUser(role, kind)
	return r.newClient(t, kind, u, r.users.pw[u])
}

// pushPull pushes the test image as repoTag with c, checks that the
// registry holds it, pulls it back and compares digests; it returns the
// digest.
func (r *pairEnv) pushPull(t *testing.T, c *clients.Client, repoTag string) string {
	t.Helper()
	if res := c.Push(t, repoTag); res.Code != 0 {
		t.Fatalf("push %s as %s: exit %d\n%s", repoTag, c.User, res.Code, res.Output())
	}
	repo, tag, _ := strings.Cut(repoTag, ":")
	pushed := r.digest(t, repo, tag)
	if pushed == "" {
		t.Fatalf("push %s as %s succeeded, but the registry has no such tag", repoTag, c.User)
	}
	res, got := c.PullDigest(t, repoTag)
	if res.Code != 0 || got != pushed {
		t.Fatalf("pull %s as %s: exit %d, digest %q, want %s\n%s", repoTag, c.User, res.Code, got, pushed, res.Output())
	}
	return pushed
}

// skipContainerdDocker skips docker with the containerd image store when
// this host has none.
func (r *pairEnv) skipContainerdDocker(t *testing.T, kind string) {
	if kind == dockerContainerd && strings.HasPrefix(r.containerdDocker, "!") {
		r.results.skipCol(r.reg, kind, r.containerdDocker[1:])
		t.Skip(r.containerdDocker[1:])
	}
}

// testPair runs every check for one client on one registry.
func (r *pairEnv) testPair(t *testing.T, kind string) {
	r.skipContainerdDocker(t, kind)
	// dockerd trusts registries on loopback addresses without verifying
	// their certificate: docker does not check the test CA.
	tag := "1.0.0-" + kind // a chart version too, for helm
	app := "interop/" + kind + "/app"
	rw := r.client(t, kind, "rw")
	var pushed string
	r.check(t, kind, "login", rw.Lacks(clients.OpLogin), func(t *testing.T) {
		rw.MustLogin(t)
	})
	if rw.Lacks(clients.OpLogin) != "" {
		rw.Login(t) // crane writes the credentials down; ctr does nothing
	}
	r.check(t, kind, "push-pull", "", func(t *testing.T) {
		pushed = r.pushPull(t, rw, app+":"+tag)
	})
	r.check(t, kind, "denied-push", "", func(t *testing.T) {
		rw.ExpectPushDenied(t, "locked/"+kind+":"+tag, func(t testing.TB, repo, tag string) bool { return r.digest(t, repo, tag) != "" })
	})
	r.check(t, kind, "read-only", "", func(t *testing.T) {
		if pushed == "" {
			t.Skip("nothing was pushed")
		}
		ro := r.client(t, kind, "ro")
		ro.Login(t)
		res, got := ro.PullDigest(t, app+":"+tag)
		if res.Code != 0 || got != pushed {
			t.Errorf("pull %s:%s as ro: exit %d, digest %q, want %s\n%s", app, tag, res.Code, got, pushed, res.Output())
		}
		ro.ExpectPushDenied(t, "interop/"+kind+"/ro:"+tag, func(t testing.TB, repo, tag string) bool { return r.digest(t, repo, tag) != "" })
	})
	cp := "interop/" + kind + "/copy"
	r.check(t, kind, "copy", rw.Lacks(clients.OpCopy), func(t *testing.T) {
		if pushed == "" {
			t.Skip("nothing was pushed")
		}
		if res := rw.Copy(t, app+":"+tag, cp+":"+tag); res.Code != 0 {
			t.Fatalf("copy to %s as rw: exit %d\n%s", cp, res.Code, res.Output())
		}
		if got := r.digest(t, cp, tag); got != pushed {
			t.Errorf("copy to %s:%s: the registry has %q, want %s", cp, tag, got, pushed)
		}
		if r.mounted(t, cp, app) {
			t.Logf("%s mounted blobs from %s", kind, app)
		}
	})
	r.check(t, kind, "delete", rw.Lacks(clients.OpDelete), func(t *testing.T) {
		d := r.digest(t, cp, tag)
		if d == "" {
			t.Skip("nothing was copied to delete")
		}
		clients.ExpectDenied(t, rw.Delete(t, cp, d), kind+" delete as "+rw.User+", who lacks delete")
		if r.digest(t, cp, d) == "" {
			t.Fatalf("a refused delete removed %s@%s", cp, d)
		}
		del := r.client(t, kind, "del")
		del.Login(t)
		if res := del.Delete(t, cp, d); res.Code != 0 {
			t.Fatalf("delete %s@%s as del: exit %d\n%s", cp, d, res.Code, res.Output())
		}
		if r.digest(t, cp, d) != "" {
			t.Errorf("delete %s@%s as del succeeded, but the registry still has it", cp, d)
		}
	})
	r.check(t, kind, "catalog", rw.Lacks(clients.OpCatalog), func(t *testing.T) {
		del := r.client(t, kind, "del")
		del.Login(t)
		if res := del.Catalog(t); res.Code != 0 || !strings.Contains(res.Stdout, app) {
			t.Errorf("catalog as del: exit %d, want %s listed\n%s", res.Code, app, res.Output())
		}
		if res := rw.Catalog(t); res.Code == 0 && strings.Contains(res.Stdout, app) {
			t.Errorf("catalog as rw, who may not list it: exit 0, %s listed", app)
		}
	})
	r.check(t, kind, "refresh-token", rw.Lacks(clients.OpIdentityToken), func(t *testing.T) {
		if pushed == "" {
			t.Skip("nothing was pushed")
		}
		user := "refresh-" + strings.ReplaceAll(r.reg, ".", "") + "-" + kind
		pw := addUser(t, r.regctl, user)
		r.regctl.MustRun(t, "", "user", "grant", user, "interop/*/*", "--actions", "pull")
		status, body := r.token(t, user, pw, url.Values{"access_type": {"offline"}, "scope": {"repository:" + app + ":pull"}})
		refresh, _ := body["refresh_token"].(string)
		if status != http.StatusOK || refresh == "" {
			t.Fatalf("refresh token for %s: status %d", user, status)
		}
		c := r.newClient(t, kind, user, "")
		c.StoreIdentityToken(t, refresh)
		if res, got := c.PullDigest(t, app+":"+tag); res.Code != 0 || got != pushed {
			t.Fatalf("pull with the stored refresh token: exit %d, digest %q, want %s\n%s", res.Code, got, pushed, res.Output())
		}
		r.regctl.MustRun(t, "new-"+pw+"\n", "user", "passwd", user, "--password-stdin")
		var last string
		if err := testenv.Poll(20*time.Second, 500*time.Millisecond, func() error {
			if last = clients.RefusedErr(c.Pull(t, app+":"+tag)); last != "" {
				return fmt.Errorf("pull %s", last)
			}
			return nil
		}); err != nil {
			t.Errorf("the refresh token still works after regctl user passwd: %v", err)
		}
	})
}

// mounted reports whether nginx logged a blob mount into repo from src
// answered 201.
func (r *pairEnv) mounted(t *testing.T, repo, src string) bool {
	t.Helper()
	b, err := os.ReadFile(r.stack.Site.Data.AccessLog)
	if err != nil {
		t.Fatal(err)
	}
	from := "from=" + url.QueryEscape(src)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "/v2/"+repo+"/blobs/uploads/") && (strings.Contains(l, from) || strings.Contains(l, "from="+src)) && strings.Contains(l, "\" 201 ") {
			return true
		}
	}
	return false
}

// logRequests logs what nginx logged for kind's repositories.
func (r *pairEnv) logRequests(t *testing.T, kind string) {
	t.Helper()
	b, _ := os.ReadFile(r.stack.Site.Data.AccessLog)
	a, _ := os.ReadFile(r.stack.Site.Data.AuthLog)
	var lines []string
	for _, l := range strings.Split(string(b)+string(a), "\n") {
		if strings.Contains(l, "/"+kind+"/") || strings.Contains(l, "/"+kind+":") || strings.Contains(l, "locked%2F"+kind) || strings.Contains(l, "%2F"+kind+"%2F") {
			lines = append(lines, l)
		}
	}
	t.Logf("nginx logged for %s:\n%s", kind, strings.Join(lines, "\n"))
}

// check runs fn as subtest name of kind's pair and records its result;
// lacks, if not "", skips it with that reason instead.
func (r *pairEnv) check(t *testing.T, kind, name, lacks string, fn func(t *testing.T)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		w := r.calls.open(t, r.stack.Site.Data.AccessLog, kind, name)
		defer func() {
			r.calls.close(t, w)
			r.results.set(r.reg, kind, name, resultOf(t))
			if t.Failed() {
				r.logRequests(t, kind)
			}
		}()
		if lacks != "" {
			t.Skip(lacks)
		}
		fn(t)
	})
}

// containerdDocker starts a dockerd with the containerd image store and
// returns its DOCKER_HOST, or "!" and why it cannot run here.
func containerdDocker(t *testing.T) string {
	t.Helper()
	bin := testenv.RequireBinary(t, "", "dockerd", "Debian's docker.io package")
	cli := testenv.RequireBinary(t, "", "docker", "the docker CLI")
	dir, err := os.MkdirTemp("", "dockerd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(cfg, []byte(`{"features": {"containerd-snapshotter": true}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args, host := testenv.DockerdArgs(dir)
	p := testenv.Start(t, "dockerd-containerd", nil, bin, append(args, "--config-file", cfg)...)
	p.WaitReady(t, 60*time.Second, testenv.DockerInfoCheck(t, []string{"DOCKER_HOST=" + host}, cli))
	res := testenv.MustRun(t, []string{"DOCKER_HOST=" + host}, "", cli, "info", "--format", "{{.ServerVersion}} {{.Driver}} {{json .DriverStatus}}")
	if f := strings.Fields(res.Stdout); len(f) < 2 || !strings.Contains(res.Stdout, "io.containerd.snapshotter") {
		return fmt.Sprintf("!Debian's dockerd %s has no containerd image store: started with daemon.json "+
			`{"features": {"containerd-snapshotter": true}}`+" it ignores the feature and keeps its graph driver (docker info: %s); "+
			"the containerd image store came with Docker 24 (experimental since 23)", f[0], strings.TrimSpace(res.Stdout))
	}
	return host
}
