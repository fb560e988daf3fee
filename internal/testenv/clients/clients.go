// Package clients drives the registry clients people push and pull with
// as one user each, for the end-to-end tests (internal/e2e, against local
// registries), the fresh-host tests (internal/systest, from outside a
// provisioned host) and the interop matrix (internal/interop, through the
// rendered nginx). Each kind of client is one driver (skopeo.go, crane.go,
// docker.go, containers.go for podman and buildah, ctr.go, regclient.go,
// oras.go, helm.go); what a client cannot do is listed by its driver with
// the reason, so callers skip it visibly (Client.Lacks).
//
// Each client keeps its credentials in its own directory, so nothing
// reaches ~/.docker, ~/.config/containers or another tool's settings, and
// passwords travel on stdin only (ctr, which reads its password from a
// terminal only, gets one: testenv.RunTTY).
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

// Kinds are the clients every end-to-end and fresh-host scenario runs with.
var Kinds = []string{"skopeo", "crane", "docker"}

// AllKinds are every client this package drives (the interop matrix).
var AllKinds = []string{"skopeo", "crane", "docker", "podman", "buildah", "ctr", "regclient", "oras", "helm"}

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
	Kind     string // one of AllKinds
	Bin      string // the client's binary
	Host     string // the registry: NAME or NAME:PORT
	User, PW string
	Dir      string   // the client's own directory: its credentials, settings, storage
	Env      []string // extra environment of every command (DOCKER_HOST for docker)
	Image    string   // docker-archive tarball to push (all but docker with Layer, oras and helm)
	Layer    string   // rootfs tarball for `docker import`; "" for docker to load Image
	Run      Runner   // nil: Local

	// CA is the PEM file of the CA the registry's certificate chains to.
	// "" means plain HTTP or an unverified certificate (--insecure and
	// --tls-verify=false). docker reads its daemon's certs.d either way:
	// the caller puts the CA there.
	CA string

	// Containerd is the containerd socket ctr talks to (see
	// StartContainerd).
	Containerd string

	drv driver
}

// Op is an operation a client may lack.
type Op string

// The operations a driver may lack (Client.Lacks).
const (
	OpLogin         Op = "login"          // a login command that checks the password
	OpCopy          Op = "copy"           // registry-to-registry copy across repositories
	OpDelete        Op = "delete"         // deleting a manifest from the registry
	OpCatalog       Op = "catalog"        // listing the registry's repositories
	OpIdentityToken Op = "identity-token" // a stored refresh token (docker's identitytoken)
)

// driver is one kind of client: its binary, environment and commands.
// Optional abilities are the interfaces copier, deleter, cataloger and
// tokenStorer; limits says why a driver lacks one (or OpLogin).
type driver interface {
	binary(t testing.TB) string
	env(c *Client) []string
	login(t testing.TB, c *Client) testenv.Result
	push(t testing.TB, c *Client, repoTag string) testenv.Result
	// pull fetches repoTag into out, a fresh directory, and returns the
	// manifest digest the client got ("" if it failed).
	pull(t testing.TB, c *Client, repoTag, out string) (testenv.Result, string)
	limits() map[Op]string
}

type copier interface {
	copy(t testing.TB, c *Client, src, dst string) testenv.Result
}

type deleter interface {
	// delete removes repo@digest.
	delete(t testing.TB, c *Client, repo, digest string) testenv.Result
}

type cataloger interface {
	// catalog prints the repositories, one a line or as JSON strings.
	catalog(t testing.TB, c *Client) testenv.Result
}

type tokenStorer interface {
	// storeIdentityToken replaces the stored credentials with a refresh
	// token, where the client looks for docker's identitytoken.
	storeIdentityToken(t testing.TB, c *Client, token string)
}

var drivers = map[string]driver{
	"skopeo":    skopeo{},
	"crane":     crane{},
	"docker":    docker{},
	"podman":    containers{name: "podman"},
	"buildah":   containers{name: "buildah"},
	"ctr":       ctr{},
	"regclient": regclient{},
	"oras":      oras{},
	"helm":      helm{},
}

// New returns a client of kind for user, with its own directory below
// dir. It skips the test if the client's binary is missing; crane's binary
// is crane.
func New(t testing.TB, kind, crane, host, user, pw, dir string) *Client {
	t.Helper()
	drv, ok := drivers[kind]
	if !ok {
		t.Fatalf("clients: unknown client %q", kind)
	}
	c := &Client{Kind: kind, Host: host, User: user, PW: pw, Dir: filepath.Join(dir, kind+"-"+user), drv: drv}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if kind == "crane" {
		c.Bin = crane
	} else {
		c.Bin = drv.binary(t)
	}
	return c
}

func (c *Client) run(t testing.TB, stdin string, args ...string) testenv.Result {
	t.Helper()
	run := c.Run
	if run == nil {
		run = Local
	}
	return run(t, c.environ(), stdin, append([]string{c.Bin}, args...)...)
}

// environ is every command's extra environment: HOME and the tool's
// settings in c.Dir, then c.Env.
func (c *Client) environ() []string {
	env := append([]string{"HOME=" + c.Dir}, c.drv.env(c)...)
	if c.CA != "" {
		// The Go clients' only trust store, when they have no CA flag.
		env = append(env, "SSL_CERT_FILE="+c.CA)
	}
	return append(env, c.Env...)
}

func (c *Client) authFile() string { return filepath.Join(c.Dir, "auth.json") }

// Ref is the full reference of repoTag ("repo:tag") on the registry.
func (c *Client) Ref(repoTag string) string { return c.Host + "/" + repoTag }

// Lacks returns why the client cannot do op, or "" if it can.
func (c *Client) Lacks(op Op) string {
	var can bool
	switch op {
	case OpCopy:
		_, can = c.drv.(copier)
	case OpDelete:
		_, can = c.drv.(deleter)
	case OpCatalog:
		_, can = c.drv.(cataloger)
	case OpIdentityToken:
		_, can = c.drv.(tokenStorer)
	case OpLogin:
		can = true
	}
	if why := c.drv.limits()[op]; why != "" {
		return why
	}
	if !can {
		return "not driven by package clients"
	}
	return ""
}

// Login stores the user's credentials the client's way. Most clients
// check them with the registry and token server; crane only writes them
// down (LoginChecks tells which), and ctr has no login: it is given the
// password on every command.
func (c *Client) Login(t testing.TB) testenv.Result {
	t.Helper()
	return c.drv.login(t, c)
}

// LoginChecks reports whether Login asks the server.
func (c *Client) LoginChecks() bool { return c.drv.limits()[OpLogin] == "" }

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
	return c.drv.push(t, c, repoTag)
}

// Pull downloads repoTag (manifest, config and layers).
func (c *Client) Pull(t testing.TB, repoTag string) testenv.Result {
	t.Helper()
	r, _ := c.PullDigest(t, repoTag)
	return r
}

// PullDigest is Pull that also returns the digest of the manifest the
// client fetched, as the client reports or stored it ("" on failure).
func (c *Client) PullDigest(t testing.TB, repoTag string) (testenv.Result, string) {
	t.Helper()
	out, err := os.MkdirTemp(c.Dir, "pull")
	if err != nil {
		t.Fatal(err)
	}
	r, digest := c.drv.pull(t, c, repoTag, out)
	if r.Code != 0 {
		digest = ""
	}
	return r, digest
}

// Copy copies src to dst ("repo:tag" each) on the registry, the client's
// way: straight from registry to registry where it can (the blobs then
// mounted across repositories), else by pulling and pushing. It fails the
// test if the client lacks OpCopy.
func (c *Client) Copy(t testing.TB, src, dst string) testenv.Result {
	t.Helper()
	cp, ok := c.drv.(copier)
	if !ok {
		t.Fatalf("%s has no copy: %s", c.Kind, c.Lacks(OpCopy))
	}
	return cp.copy(t, c, src, dst)
}

// Delete deletes the manifest repo@digest from the registry. It fails the
// test if the client lacks OpDelete.
func (c *Client) Delete(t testing.TB, repo, digest string) testenv.Result {
	t.Helper()
	d, ok := c.drv.(deleter)
	if !ok {
		t.Fatalf("%s has no delete: %s", c.Kind, c.Lacks(OpDelete))
	}
	return d.delete(t, c, repo, digest)
}

// Catalog lists the registry's repositories; the output names them. It
// fails the test if the client lacks OpCatalog.
func (c *Client) Catalog(t testing.TB) testenv.Result {
	t.Helper()
	cl, ok := c.drv.(cataloger)
	if !ok {
		t.Fatalf("%s has no catalog: %s", c.Kind, c.Lacks(OpCatalog))
	}
	return cl.catalog(t, c)
}

// StoreIdentityToken replaces the client's stored credentials with the
// refresh token, as docker login stores one (identitytoken). It fails the
// test if the client lacks OpIdentityToken.
func (c *Client) StoreIdentityToken(t testing.TB, token string) {
	t.Helper()
	s, ok := c.drv.(tokenStorer)
	if !ok {
		t.Fatalf("%s cannot store an identity token: %s", c.Kind, c.Lacks(OpIdentityToken))
	}
	s.storeIdentityToken(t, c, token)
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
	} else if msg := c.DeniedErr(r); msg != "" {
		t.Errorf("%s: want it denied, but it %s", what, msg)
	}
	repo, tag, _ := strings.Cut(repoTag, ":")
	if exists(t, repo, tag) {
		t.Errorf("%s was refused, yet the registry has %s", what, repoTag)
	}
}

// DeniedErr is the package's DeniedErr with the client's own wording for
// a refusal too: ctr prints only the registry's error code,
// "insufficient_scope".
func (c *Client) DeniedErr(r testenv.Result) string {
	if w, ok := c.drv.(interface{ deniedWords() []string }); ok {
		return FailedWith(r, append([]string{"denied", "unauthorized"}, w.deniedWords()...)...)
	}
	return DeniedErr(r)
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
