// Package clients drives the registry clients people push and pull with
// (skopeo, crane and the docker CLI) as one user each, for the end-to-end
// tests (internal/e2e, against local registries) and the fresh-host tests
// (internal/systest, from outside a provisioned host). Each client keeps
// its credentials in its own directory, so nothing reaches ~/.docker or
// ~/.config/containers, and passwords travel on stdin only.
package clients

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/regctl/regctl/internal/testenv"
)

// Kinds are the clients every scenario runs with.
var Kinds = []string{"skopeo", "crane", "docker"}

// Runner runs argv with env added to the environment and stdin (may be
// empty), where the client runs: on this machine (Local) or elsewhere
// (in a network namespace, say).
type Runner func(t testing.TB, env []string, stdin string, argv ...string) testenv.Result

// Local runs commands on this machine.
func Local(t testing.TB, env []string, stdin string, argv ...string) testenv.Result {
	t.Helper()
	return testenv.Run(t, env, stdin, argv[0], argv[1:]...)
}

// Client is one registry client acting as one user.
type Client struct {
	Kind     string // one of Kinds
	Bin      string // the client's binary
	Host     string // the registry: NAME or NAME:PORT
	User, PW string
	Dir      string   // DOCKER_CONFIG, skopeo's auth file and CA directory
	Env      []string // extra environment of every command (DOCKER_HOST for docker)
	Image    string   // docker-archive tarball to push (skopeo, crane)
	Layer    string   // rootfs tarball for `docker import`
	Run      Runner   // nil: Local

	// CA is the PEM file of the CA the registry's certificate chains to.
	// "" means plain HTTP or an unverified certificate (--insecure and
	// --tls-verify=false). docker reads its daemon's certs.d either way:
	// the caller puts the CA there.
	CA string
}

// New returns a client of kind for user, with its own directory below
// dir. It skips the test if skopeo or docker is missing; crane's binary
// is crane.
func New(t testing.TB, kind, crane, host, user, pw, dir string) *Client {
	t.Helper()
	c := &Client{Kind: kind, Host: host, User: user, PW: pw, Dir: filepath.Join(dir, kind+"-"+user)}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	switch kind {
	case "skopeo":
		c.Bin = testenv.RequireBinary(t, "", "skopeo", "Debian's skopeo package")
	case "crane":
		c.Bin = crane
	case "docker":
		c.Bin = testenv.RequireBinary(t, "", "docker", "the docker CLI")
	default:
		t.Fatalf("clients: unknown client %q", kind)
	}
	return c
}

func (c *Client) run(t testing.TB, stdin string, args ...string) testenv.Result {
	t.Helper()
	env := append([]string{
		"DOCKER_CONFIG=" + c.Dir,
		"HOME=" + c.Dir,
		"REGISTRY_AUTH_FILE=" + c.authFile(),
	}, c.Env...)
	if c.CA != "" && c.Kind == "crane" {
		env = append(env, "SSL_CERT_FILE="+c.CA)
	}
	run := c.Run
	if run == nil {
		run = Local
	}
	return run(t, env, stdin, append([]string{c.Bin}, args...)...)
}

func (c *Client) authFile() string { return filepath.Join(c.Dir, "auth.json") }

// Ref is the full reference of repoTag ("repo:tag") on the registry.
func (c *Client) Ref(repoTag string) string { return c.Host + "/" + repoTag }

// tls returns skopeo's TLS flag for direction ("src", "dest" or "" for
// login): the CA directory, or no verification without a CA.
func (c *Client) tls(t testing.TB, direction string) string {
	t.Helper()
	prefix := "--"
	if direction != "" {
		prefix += direction + "-"
	}
	if c.CA == "" {
		return prefix + "tls-verify=false"
	}
	dir := filepath.Join(c.Dir, "certs")
	pem, err := os.ReadFile(c.CA)
	if err == nil {
		err = os.MkdirAll(dir, 0o700)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "ca.crt"), pem, 0o600)
	}
	if err != nil {
		t.Fatalf("clients: skopeo's CA directory: %v", err)
	}
	return prefix + "cert-dir=" + dir
}

// craneFlags are crane's flags: --insecure without a CA.
func (c *Client) craneFlags() []string {
	if c.CA == "" {
		return []string{"--insecure"}
	}
	return nil
}

// Login stores the user's credentials the client's way. docker and skopeo
// check them with the registry and token server; crane only writes them
// down (LoginChecks tells which).
func (c *Client) Login(t testing.TB) testenv.Result {
	t.Helper()
	switch c.Kind {
	case "skopeo":
		return c.run(t, c.PW, "login", c.tls(t, ""), "--authfile", c.authFile(), "-u", c.User, "--password-stdin", c.Host)
	case "crane":
		return c.run(t, c.PW, "auth", "login", c.Host, "-u", c.User, "--password-stdin")
	default:
		return c.run(t, c.PW, "login", c.Host, "-u", c.User, "--password-stdin")
	}
}

// LoginChecks reports whether Login asks the server.
func (c *Client) LoginChecks() bool { return c.Kind != "crane" }

// MustLogin fails the test unless Login succeeds.
func (c *Client) MustLogin(t testing.TB) {
	t.Helper()
	if r := c.Login(t); r.Code != 0 {
		t.Fatalf("%s login as %s: exit %d\n%s", c.Kind, c.User, r.Code, r.Output())
	}
}

// Push uploads the test image as repoTag with the credentials Login
// stored.
func (c *Client) Push(t testing.TB, repoTag string) testenv.Result {
	t.Helper()
	ref := c.Ref(repoTag)
	switch c.Kind {
	case "skopeo":
		return c.run(t, "", "--insecure-policy", "copy", c.tls(t, "dest"), "--dest-authfile", c.authFile(),
			"docker-archive:"+c.Image, "docker://"+ref)
	case "crane":
		return c.run(t, "", append(append([]string{"push"}, c.craneFlags()...), c.Image, ref)...)
	default:
		if r := c.run(t, "", "import", c.Layer, ref); r.Code != 0 {
			t.Fatalf("docker import: exit %d\n%s", r.Code, r.Output())
		}
		return c.run(t, "", "push", ref)
	}
}

// Pull downloads repoTag (manifest, config and layers).
func (c *Client) Pull(t testing.TB, repoTag string) testenv.Result {
	t.Helper()
	ref := c.Ref(repoTag)
	out, err := os.MkdirTemp(c.Dir, "pull")
	if err != nil {
		t.Fatal(err)
	}
	switch c.Kind {
	case "skopeo":
		return c.run(t, "", "--insecure-policy", "copy", c.tls(t, "src"), "--src-authfile", c.authFile(),
			"docker://"+ref, "dir:"+out)
	case "crane":
		return c.run(t, "", append(append([]string{"pull"}, c.craneFlags()...), ref, filepath.Join(out, "image.tar"))...)
	default:
		c.run(t, "", "rmi", ref) // a local copy would hide what the registry says
		return c.run(t, "", "pull", ref)
	}
}

// MustPush fails the test unless Push succeeds.
func (c *Client) MustPush(t testing.TB, repoTag string) {
	t.Helper()
	if r := c.Push(t, repoTag); r.Code != 0 {
		t.Errorf("%s push %s as %s: exit %d, want success\n%s", c.Kind, repoTag, c.User, r.Code, r.Output())
	}
}

// MustPull fails the test unless Pull succeeds.
func (c *Client) MustPull(t testing.TB, repoTag string) {
	t.Helper()
	if r := c.Pull(t, repoTag); r.Code != 0 {
		t.Errorf("%s pull %s as %s: exit %d, want success\n%s", c.Kind, repoTag, c.User, r.Code, r.Output())
	}
}

// ExpectPushDenied pushes repoTag and fails the test unless the push is
// refused for lack of access and exists reports no such tag afterwards.
func (c *Client) ExpectPushDenied(t testing.TB, repoTag string, exists func(t testing.TB, repo, tag string) bool) {
	t.Helper()
	what := fmt.Sprintf("%s push %s as %s", c.Kind, repoTag, c.User)
	r := c.Push(t, repoTag)
	if c.Kind == "crane" && r.Code != 0 && CranePutRetryBug.MatchString(r.Stderr) {
		t.Logf("%s: crane hid the registry's 401 behind its PUT retry bug (go-containerregistry#1004)", what)
	} else {
		ExpectDenied(t, r, what)
	}
	repo, tag, _ := strings.Cut(repoTag, ":")
	if exists(t, repo, tag) {
		t.Errorf("%s was refused, yet the registry has %s", what, repoTag)
	}
}

// CranePutRetryBug matches go-containerregistry's retry of a PUT with an
// already consumed body after a 401 (google/go-containerregistry#1004):
// crane reports that instead of the registry's UNAUTHORIZED, at random.
// Over HTTP/1.1 Go's client refuses to send the empty body; over HTTP/2
// (through nginx) it sends it, and nginx answers 400 for the body that
// never came.
var CranePutRetryBug = regexp.MustCompile(`Put "[^"]*/manifests/[^"]*": http: ContentLength=\d+ with Body length 0|PUT \S*/manifests/\S*: unexpected status code 400 Bad Request: <html>`)

// DeniedErr returns "" if r is a failure whose message says access was
// denied or unauthorized, and what is wrong with it otherwise.
func DeniedErr(r testenv.Result) string {
	return FailedWith(r, "denied", "unauthorized")
}

// RefusedErr is DeniedErr that also takes skopeo's wording for
// credentials the token server rejects: "invalid username/password".
func RefusedErr(r testenv.Result) string {
	return FailedWith(r, "denied", "unauthorized", "invalid username/password")
}

// FailedWith returns "" if r failed with a message containing one of
// phrases (case-insensitive), and what is wrong with it otherwise.
func FailedWith(r testenv.Result, phrases ...string) string {
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

// ExpectDenied fails the test unless r was refused for lack of access.
func ExpectDenied(t testing.TB, r testenv.Result, what string) {
	t.Helper()
	if msg := DeniedErr(r); msg != "" {
		t.Errorf("%s: want it denied, but it %s", what, msg)
	}
}

// ExpectRefused fails the test unless r was refused for bad credentials
// or lack of access.
func ExpectRefused(t testing.TB, r testenv.Result, what string) {
	t.Helper()
	if msg := RefusedErr(r); msg != "" {
		t.Errorf("%s: want it refused, but it %s", what, msg)
	}
}
