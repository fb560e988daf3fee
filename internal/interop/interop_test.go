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
// Then two registries behind one regctl serve (services A and B):
// distribution 2.8 as A and 3.1.2 as B, each behind a rendered nginx of
// its own; every client pushes and pulls on both, and a token for one is
// refused by the other.
//
// Each cell of the report says which kinds of token request the check's
// client made (tokenlog_test.go). With REGCTL_TEST_INTEROP_REPORT=FILE the
// report is written to FILE (scripts/test.sh prints it; so does `make
// interop`). The run is compared with README.md's compatibility table
// (readme_test.go): a cell the README claims green that is not fails the
// test; -update rewrites the table from a whole run.
//
//	go test -tags integration -run 'TestInterop/distribution-3.1.2/oras' ./internal/interop
package interop

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// twoRegistries is the setup of two registries behind one regctl serve:
// distribution 2.8 as service A and 3.1.2 as service B, each behind its
// own rendered nginx.
const twoRegistries = "two-registries"

// The service names of the two registries.
const (
	serviceA = "registry-a.test"
	serviceB = "registry-b.test"
)

// groups are the report's tables: each registry, then the two
// registries behind one token server.
func groups() []group {
	var out []group
	for _, reg := range registries {
		out = append(out, group{setup: reg.name, checks: checks})
	}
	return append(out, group{setup: twoRegistries, checks: []string{pushPullA, pushPullB}})
}

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
	u, usersAdded := addUsers(t, rc)

	work := t.TempDir()
	image := testenv.MakeImageLayers(t, crane, work, 3)
	ca := certstest.NewCA(t, "regctl interop test CA")
	caFile := filepath.Join(work, "ca.pem")
	writeCA(t, caFile, ca)

	env := &matrixEnv{crane: crane, regctl: rc, users: u, image: image, ca: caFile,
		dockerd: testenv.Dockerd(t), results: newResults()}
	env.containerd = clients.StartContainerd(t, testenv.RequireBinary(t, "", "containerd", "Debian's containerd package"))
	env.containerdDocker = containerdDocker(t)
	usersAdded()

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
			r := &pairEnv{matrixEnv: env, reg: reg.name, stack: stack, service: c.TokenService(), calls: &windows{}}
			// Before the stack's own cleanups: its logs are still there.
			t.Cleanup(func() { r.calls.attribute(t, env.results, reg.name, stack.AuditLog) })
			t.Run("no-from-grant", r.testNoFromGrant)
			for _, kind := range matrixKinds {
				t.Run(kind, func(t *testing.T) {
					t.Parallel()
					r.testPair(t, kind)
				})
			}
		})
	}
	t.Run(twoRegistries, func(t *testing.T) { env.testTwoRegistries(t, regctl, store, kd, ca) })
	t.Logf("matrix took %s", time.Since(start).Round(time.Second))
	table := env.results.table(groups(), matrixKinds)
	t.Logf("results:\n%s", table)
	if p := os.Getenv(EnvReport); p != "" {
		rendertest.WriteFile(t, p, []byte(fmt.Sprintf("%s\nmatrix took %s\n", table, time.Since(start).Round(time.Second))), 0o644)
	}
	var regs []string
	for _, reg := range registries {
		regs = append(regs, reg.name)
	}
	checkREADME(t, env.results, regs, twoRegistries, matrixKinds)
}

// testTwoRegistries: one regctl serve with services A and B fronts two
// registries, distribution 2.8 as A and 3.1.2 as B, each behind a nginx of
// its own. Every client pushes and pulls on both, and a token for one
// registry is refused by the other (its aud names the first).
func (env *matrixEnv) testTwoRegistries(t *testing.T, regctl, store, kd string, ca *certstest.CA) {
	binA := testenv.RequireBinary(t, testenv.EnvRegistry2, "docker-registry", "Debian's distribution 2.8")
	binB := testenv.RequireBinary(t, testenv.EnvRegistry3, "", "the distribution 3.1.2 registry binary")
	cA := config.Defaults()
	cA.Domains.Registry = "localhost"
	cA.Token.Service, cA.Token.ExtraServices = serviceA, []string{serviceB}
	cB := cA
	cB.Token.Service, cB.Token.ExtraServices = serviceB, nil
	for _, c := range []*config.Config{&cA, &cB} {
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	sc := rendertest.StackConfig{Config: &cA, Regctl: regctl, Store: store, KeysDir: kd, RegistryBin: binA, CA: ca,
		Secrets: render.Secrets{RegistryHTTPSecret: testenv.RandomHex(16)}}
	stackA := rendertest.Start(t, sc)
	sc.Config, sc.RegistryBin, sc.Serve = &cB, binB, stackA
	sc.Secrets.RegistryHTTPSecret = testenv.RandomHex(16)
	stackB := rendertest.Start(t, sc)
	calls := &windows{}
	a := &pairEnv{matrixEnv: env, reg: twoRegistries, stack: stackA, service: serviceA, calls: calls}
	b := &pairEnv{matrixEnv: env, reg: twoRegistries, stack: stackB, service: serviceB, calls: calls}
	t.Cleanup(func() { calls.attribute(t, env.results, twoRegistries, stackA.AuditLog) })

	t.Run("audience", func(t *testing.T) {
		defer func() { env.results.set(twoRegistries, "(HTTP)", "audience", resultOf(t)) }()
		const repo = "interop/audience/app"
		tokA, tokB := a.bearer(t, "admin", "repository:"+repo+":pull"), b.bearer(t, "admin", "repository:"+repo+":pull")
		for _, tt := range []struct {
			what string
			at   *pairEnv
			tok  string
			want int
		}{
			{"A's token at A", a, tokA, http.StatusNotFound},
			{"B's token at B", b, tokB, http.StatusNotFound},
			{"A's token at B", b, tokA, http.StatusUnauthorized},
			{"B's token at A", a, tokB, http.StatusUnauthorized},
		} {
			if got, _ := tt.at.headManifest(t, tt.tok, repo, "1"); got != tt.want {
				t.Errorf("%s: HEAD %s:1 answered %d, want %d", tt.what, repo, got, tt.want)
			}
		}
	})
	for _, kind := range matrixKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			a.skipContainerdDocker(t, kind)
			repoTag := "interop/" + kind + "/two:1.0.0-" + kind
			for _, p := range []struct {
				r     *pairEnv
				check string
			}{{a, pushPullA}, {b, pushPullB}} {
				p.r.check(t, kind, p.check, "", func(t *testing.T) {
					c := p.r.client(t, kind, "rw")
					c.Login(t)
					p.r.pushPull(t, c, repoTag)
				})
			}
		})
	}
}

func writeCA(t *testing.T, path string, ca *certstest.CA) {
	t.Helper()
	b := ca.Issue([]string{"localhost"}, time.Now(), time.Now().Add(time.Hour)).Fullchain
	// Fullchain is the leaf, then the CA: keep the CA.
	i := strings.LastIndex(string(b), "-----BEGIN CERTIFICATE-----")
	rendertest.WriteFile(t, path, b[i:], 0o644)
}

// users are the accounts every pair works with, by name.
type users struct{ pw map[string]string }

// The users: each client has its own (kindUser): rw-KIND pushes and
// pulls interop/*/*, ro-KIND pulls them, del-KIND may also delete there
// and list the catalog; so every token request names its client. The
// harness's own: writer pushes and pulls interop/*/*; nosrc pushes and
// pulls mirror/*/* only; admin reads everything, for the assertions.
// addUsers adds them in the background (four at a time, not in subtests,
// so that -run TestInterop/… has them too); wait returns when they are
// there, and stops the test if one is not.
func addUsers(t *testing.T, rc testenv.Regctl) (u users, wait func()) {
	type user struct {
		name   string
		flags  []string
		grants [][2]string // pattern, actions
	}
	all := []user{
		{name: "writer", grants: [][2]string{{"interop/*/*", "pull,push"}}},
		{name: "nosrc", grants: [][2]string{{"mirror/*/*", "pull,push"}}},
		{name: "admin", grants: [][2]string{{"interop/*/*", "pull"}, {"locked/*", "pull"}, {"mirror/*/*", "pull"}}},
	}
	for _, kind := range matrixKinds {
		all = append(all,
			user{name: kindUser("rw", kind), grants: [][2]string{{"interop/*/*", "pull,push"}}},
			user{name: kindUser("ro", kind), grants: [][2]string{{"interop/*/*", "pull"}}},
			user{name: kindUser("del", kind), flags: []string{"--label", "catalog=yes"}, grants: [][2]string{{"interop/*/*", "pull,push,delete"}}})
	}
	u = users{pw: map[string]string{}}
	for _, x := range all {
		u.pw[x.name] = "pw-" + testenv.RandomHex(12)
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // if the test stops before wait
	sem := make(chan struct{}, 4)
	for _, x := range all {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			stdin, args := u.pw[x.name]+"\n", append([]string{"user", "add", x.name, "--password-stdin"}, x.flags...)
			for i := 0; ; i++ {
				if res := rc.Run(t, stdin, args...); res.Code != 0 {
					t.Errorf("regctl %s: exit %d\n%s", strings.Join(args, " "), res.Code, res.Output())
					return
				}
				if i == len(x.grants) {
					return
				}
				stdin, args = "", []string{"user", "grant", x.name, x.grants[i][0], "--actions", x.grants[i][1]}
			}
		})
	}
	return u, func() {
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
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
	reg     string // the setup
	stack   *rendertest.Stack
	service string
	calls   *windows // the setup's checks, for the token flavours
}

// https is a client that trusts the test CA.
func (r *pairEnv) https() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: r.stack.Site.Roots},
	}}
}
