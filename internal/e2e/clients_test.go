//go:build integration

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/testenv"
)

// The registry clients every scenario runs with.
var clientKinds = []string{"skopeo", "crane", "docker"}

// client is one registry client (skopeo, crane or docker) acting as one
// user, with its own credential files so nothing reaches ~/.docker or
// ~/.config/containers.
type client struct {
	kind     string
	bin      string
	host     string // registry, localhost:PORT
	user, pw string
	dir      string   // DOCKER_CONFIG and the skopeo auth file live here
	env      []string // extra environment of every command
	image    string   // docker-archive tarball (skopeo, crane)
	layer    string   // rootfs tarball for `docker import`
}

// newClient returns a client of kind for user on stack s. It skips the
// test if the client's tool (or, for docker, the dockerd) is missing.
func newClient(t *testing.T, kind string, s *stack, user, pw string) *client {
	t.Helper()
	c := &client{kind: kind, host: s.reg.Host, user: user, pw: pw, dir: t.TempDir(), image: s.image, layer: s.layer}
	c.env = []string{
		"DOCKER_CONFIG=" + c.dir,
		"REGISTRY_AUTH_FILE=" + filepath.Join(c.dir, "auth.json"),
	}
	switch kind {
	case "skopeo":
		c.bin = testenv.RequireBinary(t, "", "skopeo", "Debian's skopeo package")
	case "crane":
		c.bin = s.env.crane
	case "docker":
		c.bin = testenv.RequireBinary(t, "", "docker", "the docker CLI")
		c.env = append(c.env, "DOCKER_HOST="+testenv.Dockerd(t))
	default:
		t.Fatalf("unknown client %q", kind)
	}
	return c
}

func (c *client) run(t *testing.T, stdin string, args ...string) testenv.Result {
	t.Helper()
	return testenv.Run(t, c.env, stdin, c.bin, args...)
}

func (c *client) ref(repoTag string) string { return c.host + "/" + repoTag }

// login stores the user's credentials the client's way. docker and skopeo
// check them with the registry and token server; crane only writes them
// down (loginChecks tells which).
func (c *client) login(t *testing.T) testenv.Result {
	t.Helper()
	switch c.kind {
	case "skopeo":
		return c.run(t, c.pw, "login", "--tls-verify=false", "--authfile", filepath.Join(c.dir, "auth.json"),
			"-u", c.user, "--password-stdin", c.host)
	case "crane":
		return c.run(t, c.pw, "auth", "login", c.host, "-u", c.user, "--password-stdin")
	default:
		return c.run(t, c.pw, "login", c.host, "-u", c.user, "--password-stdin")
	}
}

// loginChecks reports whether login asks the server.
func (c *client) loginChecks() bool { return c.kind != "crane" }

// mustLogin fails the test unless login succeeds.
func (c *client) mustLogin(t *testing.T) {
	t.Helper()
	if r := c.login(t); r.Code != 0 {
		t.Fatalf("%s login as %s: exit %d\n%s", c.kind, c.user, r.Code, r.Output())
	}
}

// push uploads the test image as repoTag ("repo:tag"). skopeo passes the
// credentials on the command line; crane and docker use what login stored.
func (c *client) push(t *testing.T, repoTag string) testenv.Result {
	t.Helper()
	ref := c.ref(repoTag)
	switch c.kind {
	case "skopeo":
		return c.run(t, "", "--insecure-policy", "copy", "--dest-tls-verify=false",
			"--dest-creds", c.user+":"+c.pw, "docker-archive:"+c.image, "docker://"+ref)
	case "crane":
		return c.run(t, "", "push", "--insecure", c.image, ref)
	default:
		if r := c.run(t, "", "import", c.layer, ref); r.Code != 0 {
			t.Fatalf("docker import: exit %d\n%s", r.Code, r.Output())
		}
		return c.run(t, "", "push", ref)
	}
}

// pull downloads repoTag (manifest, config and layers).
func (c *client) pull(t *testing.T, repoTag string) testenv.Result {
	t.Helper()
	ref := c.ref(repoTag)
	out, err := os.MkdirTemp(c.dir, "pull")
	if err != nil {
		t.Fatal(err)
	}
	switch c.kind {
	case "skopeo":
		return c.run(t, "", "--insecure-policy", "copy", "--src-tls-verify=false",
			"--src-creds", c.user+":"+c.pw, "docker://"+ref, "dir:"+out)
	case "crane":
		return c.run(t, "", "pull", "--insecure", ref, filepath.Join(out, "image.tar"))
	default:
		c.run(t, "", "rmi", ref) // a local copy would hide what the registry says
		return c.run(t, "", "pull", ref)
	}
}

func (c *client) mustPush(t *testing.T, repoTag string) {
	t.Helper()
	if r := c.push(t, repoTag); r.Code != 0 {
		t.Errorf("%s push %s as %s: exit %d, want success\n%s", c.kind, repoTag, c.user, r.Code, r.Output())
	}
}

func (c *client) mustPull(t *testing.T, repoTag string) {
	t.Helper()
	if r := c.pull(t, repoTag); r.Code != 0 {
		t.Errorf("%s pull %s as %s: exit %d, want success\n%s", c.kind, repoTag, c.user, r.Code, r.Output())
	}
}

// deniedErr returns "" if r is a failure whose message says access was
// denied or unauthorized, and what is wrong with it otherwise.
func deniedErr(r testenv.Result) string {
	return failedWith(r, "denied", "unauthorized")
}

// refusedErr is deniedErr that also takes skopeo's wording for credentials
// the token server rejects: "invalid username/password".
func refusedErr(r testenv.Result) string {
	return failedWith(r, "denied", "unauthorized", "invalid username/password")
}

// failedWith returns "" if r failed with a message containing one of
// phrases (case-insensitive), and what is wrong with it otherwise.
func failedWith(r testenv.Result, phrases ...string) string {
	if r.Code == 0 {
		return "succeeded"
	}
	out := strings.ToLower(r.Output())
	for _, p := range phrases {
		if strings.Contains(out, p) {
			return ""
		}
	}
	return fmt.Sprintf("failed (exit %d), but the message mentions none of %q:\n%s", r.Code, phrases, r.Output())
}

// expectDenied fails the test unless r was refused for lack of access.
func expectDenied(t *testing.T, r testenv.Result, what string) {
	t.Helper()
	if msg := deniedErr(r); msg != "" {
		t.Errorf("%s: want it denied, but it %s", what, msg)
	}
}

// cranePutRetryBug matches go-containerregistry's retry of a PUT with an
// already consumed body after a 401 (google/go-containerregistry#1004):
// crane reports that instead of the registry's UNAUTHORIZED, at random.
var cranePutRetryBug = regexp.MustCompile(`Put "[^"]*/manifests/[^"]*": http: ContentLength=\d+ with Body length 0`)

// expectPushDenied pushes repoTag and fails the test unless the push is
// refused for lack of access and the registry has no such tag afterwards.
func (c *client) expectPushDenied(t *testing.T, s *stack, repoTag string) {
	t.Helper()
	what := fmt.Sprintf("%s push %s as %s", c.kind, repoTag, c.user)
	r := c.push(t, repoTag)
	if c.kind == "crane" && r.Code != 0 && cranePutRetryBug.MatchString(r.Stderr) {
		t.Logf("%s: crane hid the registry's 401 behind its PUT retry bug (go-containerregistry#1004)", what)
	} else {
		expectDenied(t, r, what)
	}
	repo, tag, _ := strings.Cut(repoTag, ":")
	if s.manifestExists(t, repo, tag) {
		t.Errorf("%s was refused, yet the registry has %s", what, repoTag)
	}
}

// expectRefused fails the test unless r was refused for bad credentials or
// lack of access.
func expectRefused(t *testing.T, r testenv.Result, what string) {
	t.Helper()
	if msg := refusedErr(r); msg != "" {
		t.Errorf("%s: want it refused, but it %s", what, msg)
	}
}
