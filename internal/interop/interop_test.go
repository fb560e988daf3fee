//go:build integration

// Package interop is the interop matrix: every client people push and pull
// with (package clients' AllKinds, plus docker with the containerd image
// store) against every registry configuration regctl renders (Debian's
// distribution 2.8, v3.0.0, v3.1.2, and v3.1.2 with jwks only), each
// through the nginx `regctl render` produces, with TLS from a test CA, in
// front of `regctl serve`. docs/testing.md has the table of results and
// what each skip means.
//
// Per client and registry: login; a multi-layer push, then a pull whose
// digest must be the one the registry holds; a denied push that leaves no
// tag; a read-only user's pull, and its push refused; a copy across
// repositories (blob mount where the client asks for one); delete, refused
// without the delete action and done with it; the catalog, listed only for
// a user allowed registry:catalog:*; and a stored refresh token
// (identitytoken) that works until `regctl user passwd`. Per registry,
// over plain HTTP: a user without pull on the source of a mount gets no
// such grant and the registry uploads instead of mounting. Every check
// asserts the registry's state over HTTP, not only the client's exit code.
//
// With REGCTL_TEST_INTEROP_REPORT=FILE the table of results is written to
// FILE (scripts/test.sh prints it).
//
//	go test -tags integration -run 'TestInterop/distribution-3.1.2/oras' ./internal/interop
package interop

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/certs/certstest"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/internal/render/rendertest"
	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/testenv/clients"
)

// EnvReport names the file the table of results is written to.
const EnvReport = "REGCTL_TEST_INTEROP_REPORT"

// registry is one row group of the matrix: a registry binary and how
// regctl renders its configuration.
type registry struct {
	name      string
	env, path string // the binary: $env, else path in PATH
	keyFormat string // token.key-format
	skip      string // why the row cannot run yet
}

var registries = []registry{
	{name: "distribution-2.8", env: testenv.EnvRegistry2, path: "docker-registry", keyFormat: config.KeyFormatX5C},
	{name: "distribution-3.0.0", env: testenv.EnvRegistry30, keyFormat: config.KeyFormatX5C},
	{name: "distribution-3.1.2", env: testenv.EnvRegistry3, keyFormat: config.KeyFormatX5C},
	// regctl serve --key-format jwks: no x5c, a kid the JWKS resolves; the
	// rendered config.yml has jwks and no rootcertbundle.
	{name: "distribution-3.1.2-jwks", env: testenv.EnvRegistry3, keyFormat: config.KeyFormatJWKS},
}

// The checks, in the table's order.
var checks = []string{"login", "push-pull", "denied-push", "read-only", "copy", "delete", "catalog", "refresh-token"}

// dockerContainerd is the column of docker with the containerd image store.
const dockerContainerd = "docker-containerd"

func TestInterop(t *testing.T) {
	mongo := testenv.Require(t, testenv.EnvMongoURI, "the mongodb:// URI of a running FerretDB")
	crane := testenv.Require(t, testenv.EnvCrane, "the path of a crane binary")
	regctl := testenv.BuildRegctl(t)
	start := time.Now()

	store := testenv.MongoURI(t, mongo, testenv.UniqueName("interop"))
	rc := testenv.Regctl{Bin: regctl, Store: store}
	kd := filepath.Join(t.TempDir(), "keys")
	testenv.MustRun(t, nil, "", regctl, "keys", "generate", "--dir", kd)
	rc.MustRun(t, `- seq: 10
  match: {type: registry, name: catalog, labels: {catalog: "yes"}}
  actions: ["*"]
`, "acl", "import", "-")
	u := addUsers(t, rc)

	work := t.TempDir()
	image := testenv.MakeImageLayers(t, crane, work, 3)
	ca := certstest.NewCA(t, "regctl interop test CA")
	caFile := filepath.Join(work, "ca.pem")
	writeCA(t, caFile, ca)

	env := &matrixEnv{crane: crane, regctl: rc, users: u, image: image, ca: caFile,
		dockerd: testenv.Dockerd(t), results: newResults()}
	env.containerd = clients.StartContainerd(t, testenv.RequireBinary(t, "", "containerd", "Debian's containerd package"))
	env.containerdDocker = containerdDocker(t)

	for _, reg := range registries {
		t.Run(reg.name, func(t *testing.T) {
			if reg.skip != "" {
				env.results.skipRow(reg.name, reg.skip)
				t.Skip(reg.skip)
			}
			bin := testenv.RequireBinary(t, reg.env, reg.path, "the "+reg.name+" registry binary")
			c := config.Defaults()
			c.Domains.Registry = "localhost"
			c.Token.KeyFormat = reg.keyFormat
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			stack := rendertest.Start(t, rendertest.StackConfig{
				Config: &c, Regctl: regctl, Store: store, KeysDir: kd, RegistryBin: bin, CA: ca,
				Secrets: render.Secrets{RegistryHTTPSecret: testenv.RandomHex(16)},
			})
			r := &pairEnv{matrixEnv: env, reg: reg.name, stack: stack, service: c.TokenService()}
			t.Run("no-from-grant", r.testNoFromGrant)
			for _, kind := range append(slices.Clone(clients.AllKinds), dockerContainerd) {
				t.Run(kind, func(t *testing.T) {
					t.Parallel()
					r.testPair(t, kind)
				})
			}
		})
	}
	t.Logf("matrix took %s", time.Since(start).Round(time.Second))
	table := env.results.table()
	t.Logf("results:\n%s", table)
	if p := os.Getenv(EnvReport); p != "" {
		rendertest.WriteFile(t, p, []byte(fmt.Sprintf("%s\nmatrix took %s\n", table, time.Since(start).Round(time.Second))), 0o644)
	}
}

func writeCA(t *testing.T, path string, ca *certstest.CA) {
	t.Helper()
	b := ca.Issue([]string{"localhost"}, time.Now(), time.Now().Add(time.Hour)).Fullchain
	// Fullchain is the leaf, then the CA: keep the CA.
	i := strings.LastIndex(string(b), "-----BEGIN CERTIFICATE-----")
	rendertest.WriteFile(t, path, b[i:], 0o644)
}

// users are the accounts every pair works with, by role.
type users struct{ pw map[string]string }

// The users: rw pushes and pulls interop/*/*; ro pulls them; del may also
// delete there and list the catalog; nosrc pushes and pulls mirror/*/*
// only; admin reads everything, for the assertions.
func addUsers(t *testing.T, rc testenv.Regctl) users {
	u := users{pw: map[string]string{}}
	for _, x := range []struct {
		name, pattern, actions string
		flags                  []string
	}{
		{"rw", "interop/*/*", "pull,push", nil},
		{"ro", "interop/*/*", "pull", nil},
		{"del", "interop/*/*", "pull,push,delete", []string{"--label", "catalog=yes"}},
		{"nosrc", "mirror/*/*", "pull,push", nil},
		{"admin", "interop/*/*", "pull", nil},
	} {
		u.pw[x.name] = addUser(t, rc, x.name, x.flags...)
		rc.MustRun(t, "", "user", "grant", x.name, x.pattern, "--actions", x.actions)
	}
	rc.MustRun(t, "", "user", "grant", "admin", "locked/*", "--actions", "pull")
	rc.MustRun(t, "", "user", "grant", "admin", "mirror/*/*", "--actions", "pull")
	return u
}

func addUser(t *testing.T, rc testenv.Regctl, name string, flags ...string) string {
	t.Helper()
	pw := "pw-" + testenv.RandomHex(12)
	rc.MustRun(t, pw+"\n", append([]string{"user", "add", name, "--password-stdin"}, flags...)...)
	return pw
}

// matrixEnv is what every registry's rows share.
type matrixEnv struct {
	crane, image, ca string
	regctl           testenv.Regctl
	users            users
	dockerd          string
	containerd       string
	containerdDocker string // DOCKER_HOST of a dockerd with the containerd store, or why there is none ("!" prefix)
	results          *results
}

// pairEnv is one registry's stack.
type pairEnv struct {
	*matrixEnv
	reg     string
	stack   *rendertest.Stack
	service string
}

// https is a client that trusts the test CA.
func (r *pairEnv) https() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: r.stack.Site.Roots},
	}}
}
