//go:build integration

// Package e2e proves that regctl's token server works with real registries
// (Debian's distribution 2.8 and distribution v3.1.2) and real clients
// (skopeo, crane, docker through a real dockerd). The servers are named by
// the REGCTL_TEST_* variables documented in internal/testenv; scripts/test.sh
// starts them. Run alone with:
//
//	go test -tags integration -run TestE2E ./internal/e2e
package e2e

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/testenv/clients"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBuilds()
	os.Exit(code)
}

// reloadInterval is how often `regctl serve` rereads the store here; a
// revoked grant must stop working well within revokeDeadline.
const (
	reloadInterval = time.Second
	revokeDeadline = 15 * time.Second
)

// The ACL of the classic scenario (the article's docker_auth rules).
const classicACL = `- seq: 10
  match: {name: "${labels:full-access}"}
  actions: ["*"]
  comment: full access to the repositories in the user's full-access label
- seq: 20
  match: {name: "${labels:read-only-access}"}
  actions: ["pull"]
  comment: pull only from the repositories in the user's read-only-access label
`

// env is what every registry version shares: one regctl binary, one
// FerretDB, one crane.
type env struct {
	regctl string
	mongo  string // base mongodb:// URI, without database
	crane  string
}

func TestE2E(t *testing.T) {
	e := &env{
		mongo: testenv.Require(t, testenv.EnvMongoURI, "the mongodb:// URI of a running FerretDB"),
		crane: testenv.Require(t, testenv.EnvCrane, "the path of a crane binary (go-containerregistry v0.22.1)"),
	}
	e.regctl = testenv.BuildRegctl(t)

	for _, v := range []struct {
		version testenv.Version
		env     string
	}{
		{testenv.Distribution2, testenv.EnvRegistry2},
		{testenv.Distribution3, testenv.EnvRegistry3},
	} {
		t.Run(v.version.Name, func(t *testing.T) {
			bin := testenv.Require(t, v.env, "the path of the "+v.version.Name+" registry binary")
			s := e.startStack(t, v.version, bin)
			t.Run("classic", s.testClassic)
			t.Run("expired-user", s.testExpiredUser)
			t.Run("revoked-grant", s.testRevokedGrant)
			t.Run("expiring-grant", s.testExpiringGrant)
			t.Run("docker-login", s.testDockerLogin)
			t.Run("rs256-keys", func(t *testing.T) {
				rs := e.startStackOn(t, v.version, bin, "rs256", s.regctl.Store)
				rs.pw = s.pw // same database, same users
				c := newClient(t, "crane", rs, "waldi", s.pw["waldi"])
				c.MustLogin(t)
				c.MustPush(t, "test/app:rs256")
				c.MustPull(t, "test/app:rs256")
				c.ExpectPushDenied(t, "prod/app:rs256", rs.manifestExists)
			})
		})
	}
}

// stack is one registry version wired to its own `regctl serve`, keys and
// database, with the classic users and rules loaded.
type stack struct {
	env     *env
	regctl  testenv.Regctl
	serve   *testenv.Server
	reg     *testenv.Registry
	service string
	image   string            // docker-archive tarball to push (skopeo, crane)
	layer   string            // rootfs tarball for docker import
	pw      map[string]string // the classic users' passwords; read-only once set up

	mu      sync.Mutex
	secrets []string // passwords and tokens that regctl serve must never log
}

// secret records v as something `regctl serve` must not log.
func (s *stack) secret(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = append(s.secrets, v)
}

// checkLogSecrets fails the test if the server's log holds a recorded
// password or token.
func (s *stack) checkLogSecrets(t *testing.T) {
	log := s.serve.Proc.Log(0)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range append(s.secrets, slices.Collect(maps.Values(s.pw))...) {
		if v != "" && strings.Contains(log, v) {
			t.Errorf("regctl serve logged a password or token (%.6s…); see %s", v, s.serve.Proc.LogPath)
		}
	}
}

// startStack starts a stack on a new database and loads the classic ACL and
// users: waldi (full access to test/* and socke*), admin (full access to
// prod/*), reader (pull from prod/*) and, for the tests' own checks,
// auditor (pull from everything). admin pushes prod/app:base.
func (e *env) startStack(t *testing.T, v testenv.Version, bin string) *stack {
	t.Helper()
	db := testenv.UniqueName("e2e_" + strings.NewReplacer("-", "_", ".", "").Replace(v.Name))
	s := e.startStackOn(t, v, bin, "", testenv.MongoURI(t, e.mongo, db))

	aclFile := filepath.Join(t.TempDir(), "acl.yml")
	if err := os.WriteFile(aclFile, []byte(classicACL), 0o600); err != nil {
		t.Fatal(err)
	}
	s.regctl.MustRun(t, "", "acl", "import", aclFile)
	s.pw["waldi"] = s.addUser(t, "waldi", "--label", "full-access=test/*", "--label", "full-access=socke*")
	s.pw["admin"] = s.addUser(t, "admin", "--label", "full-access=prod/*")
	s.pw["reader"] = s.addUser(t, "reader", "--label", "read-only-access=prod/*")
	s.pw["auditor"] = s.addUser(t, "auditor", "--label", "read-only-access=*", "--label", "read-only-access=*/*")
	s.waitAccess(t, "waldi", s.pw["waldi"], "test/app", "pull", "push")
	s.waitAccess(t, "admin", s.pw["admin"], "prod/app", "pull", "push")
	s.waitAccess(t, "reader", s.pw["reader"], "prod/app", "pull")
	s.waitAccess(t, "auditor", s.pw["auditor"], "prod/app", "pull")

	admin := newClient(t, "crane", s, "admin", s.pw["admin"])
	admin.MustLogin(t)
	if r := admin.Push(t, "prod/app:base"); r.Code != 0 {
		t.Fatalf("crane push prod/app:base as admin: exit %d\n%s", r.Code, r.Output())
	}
	return s
}

// startStackOn generates keys (alg "" for regctl's default) and starts
// `regctl serve` on store plus a registry of version v trusting it.
func (e *env) startStackOn(t *testing.T, v testenv.Version, bin, alg, store string) *stack {
	t.Helper()
	s := &stack{
		env:     e,
		regctl:  testenv.Regctl{Bin: e.regctl, Store: store},
		service: "registry.e2e.test",
		pw:      map[string]string{},
	}
	keys := t.TempDir()
	args := []string{"keys", "generate", "--dir", keys}
	if alg != "" {
		args = append(args, "--alg", alg)
	}
	testenv.MustRun(t, nil, "", e.regctl, args...)
	for _, f := range []string{"ca.key", "ca.crt", "signing.key", "signing.crt", "bundle.pem", "jwks.json"} {
		if _, err := os.Stat(filepath.Join(keys, f)); err != nil {
			t.Errorf("regctl %s: %v", strings.Join(args, " "), err)
		}
	}
	issuer := "regctl-e2e-" + testenv.RandomHex(4)
	s.serve = testenv.StartServe(t, e.regctl, testenv.ServeConfig{
		Issuer:         issuer,
		Service:        s.service,
		KeysDir:        keys,
		Store:          store,
		ReloadInterval: reloadInterval,
	})
	t.Cleanup(func() { s.checkLogSecrets(t) })
	tc := testenv.TokenConfig{
		Realm:          s.serve.Realm,
		Service:        s.service,
		Issuer:         issuer,
		RootCertBundle: filepath.Join(keys, "bundle.pem"),
	}
	if v.Major >= 3 {
		tc.JWKS = filepath.Join(keys, "jwks.json")
	}
	s.reg = testenv.StartRegistry(t, bin, v, tc)
	dir := t.TempDir()
	s.image = testenv.MakeImage(t, e.crane, dir)
	s.layer = filepath.Join(dir, "layer.tar.gz")
	return s
}

// addUser creates user with extra `regctl user add` flags and returns its
// random password.
func (s *stack) addUser(t *testing.T, user string, flags ...string) string {
	t.Helper()
	pw := "pw-" + testenv.RandomHex(12)
	s.secret(pw)
	s.regctl.MustRun(t, pw+"\n", append([]string{"user", "add", user, "--password-stdin"}, flags...)...)
	return pw
}

// testClassic: the article's scenario, with each client. Refused pushes
// use tags nobody pushed, so no client can skip the upload as a no-op.
func (s *stack) testClassic(t *testing.T) {
	for _, kind := range clients.Kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			tag := ":" + kind
			waldi := newClient(t, kind, s, "waldi", s.pw["waldi"])
			waldi.MustLogin(t)
			waldi.MustPush(t, "test/app"+tag)
			waldi.MustPush(t, "socke1"+tag)
			waldi.MustPull(t, "test/app"+tag)
			waldi.MustPull(t, "socke1"+tag)
			waldi.ExpectPushDenied(t, "prod/app"+tag+"-waldi", s.manifestExists)
			clients.ExpectDenied(t, waldi.Pull(t, "prod/app:base"), kind+" pull prod/app as waldi")

			admin := newClient(t, kind, s, "admin", s.pw["admin"])
			admin.MustLogin(t)
			admin.MustPush(t, "prod/app"+tag)

			reader := newClient(t, kind, s, "reader", s.pw["reader"])
			reader.MustLogin(t)
			reader.MustPull(t, "prod/app"+tag)
			reader.ExpectPushDenied(t, "prod/app"+tag+"-reader", s.manifestExists)
			clients.ExpectDenied(t, reader.Pull(t, "test/app"+tag), kind+" pull test/app as reader")
		})
	}
}

// testExpiredUser: a user created with --expires is refused once that
// time has passed, by login and by pull; docker's stored identity token
// stops working too.
func (s *stack) testExpiredUser(t *testing.T) {
	// Long enough for `user add` (bcrypt; slow under -race) plus a login
	// before expiry.
	const lifetime = 10 * time.Second
	for _, kind := range clients.Kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			user := "expiring-" + kind
			c := newClient(t, kind, s, user, "")
			// regctl reads its clock between these two instants and may
			// round the expiry to the second.
			notBefore := time.Now().Add(lifetime - time.Second)
			c.PW = s.addUser(t, user, "--expires", lifetime.String(), "--label", "read-only-access=prod/*")
			notAfter := time.Now().Add(lifetime + time.Second)

			// Before expiry the account works, so the refusals below are
			// expiry's doing. docker keeps the identity token it gets.
			s.waitAccess(t, user, c.PW, "prod/app", "pull")
			r := c.Login(t)
			if r.Code != 0 {
				if time.Now().Before(notBefore) {
					t.Fatalf("%s login as %s before it expires: exit %d\n%s", kind, user, r.Code, r.Output())
				}
				t.Logf("login too late to check the account before expiry")
			}

			time.Sleep(time.Until(notAfter))
			if status, _, _ := s.token(t, user, c.PW, url.Values{"scope": {"repository:prod/app:pull"}}); status != http.StatusUnauthorized {
				t.Errorf("token for %s after expiry: status %d, want 401", user, status)
			}
			clients.ExpectRefused(t, c.Pull(t, "prod/app:base"), kind+" pull as expired "+user)
			if c.LoginChecks() {
				clients.ExpectRefused(t, c.Login(t), kind+" login as expired "+user)
			}
		})
	}
}

// testRevokedGrant: `regctl user revoke` takes effect within the reload
// interval (deadline revokeDeadline), including for docker's identity token.
func (s *stack) testRevokedGrant(t *testing.T) {
	for _, kind := range clients.Kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			user := "bob-" + kind
			c := newClient(t, kind, s, user, "")
			c.PW = s.addUser(t, user)
			s.regctl.MustRun(t, "", "user", "grant", user, "team/*", "--actions", "pull,push")
			s.waitAccess(t, user, c.PW, "team/app", "pull", "push")
			c.MustLogin(t)
			repo := "team/app:" + kind
			if r := c.Push(t, repo); r.Code != 0 {
				t.Fatalf("%s push %s as %s with the grant: exit %d\n%s", kind, repo, user, r.Code, r.Output())
			}

			s.regctl.MustRun(t, "", "user", "revoke", user, "team/*")
			revoked := time.Now()
			var last string
			err := testenv.Poll(revokeDeadline, 500*time.Millisecond, func() error {
				if last = clients.DeniedErr(c.Push(t, repo)); last != "" {
					return errors.New("push " + last)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%s push %s as %s still not denied %s after revoke (reload interval %s): %v",
					kind, repo, user, revokeDeadline, reloadInterval, err)
			}
			t.Logf("push denied %s after revoke", time.Since(revoked).Round(time.Millisecond))
			clients.ExpectDenied(t, c.Pull(t, repo), kind+" pull after revoke")
		})
	}
}

// testExpiringGrant: a grant made with --expires a few seconds ahead lets
// pushes through, then stops them after the expiry, with no restart.
func (s *stack) testExpiringGrant(t *testing.T) {
	const lifetime = 10 * time.Second
	for _, kind := range clients.Kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			user := "temp-" + kind
			c := newClient(t, kind, s, user, "")
			c.PW = s.addUser(t, user)
			s.regctl.MustRun(t, "", "user", "grant", user, "team/*", "--actions", "pull,push", "--expires", lifetime.String())
			expires := time.Now().Add(lifetime)
			s.waitAccess(t, user, c.PW, "team/tmp", "pull", "push")
			c.MustLogin(t)
			repo := "team/tmp:" + kind
			if r := c.Push(t, repo); r.Code != 0 {
				if time.Now().Before(expires) {
					t.Fatalf("%s push %s as %s before the grant expires: exit %d\n%s", kind, repo, user, r.Code, r.Output())
				}
				t.Logf("push too late to check the grant before expiry")
			}
			time.Sleep(time.Until(expires.Add(time.Second)))
			if last := clients.DeniedErr(c.Push(t, repo)); last != "" {
				t.Fatalf("%s push %s as %s after the grant expired: %s", kind, repo, user, last)
			}
		})
	}
}

// testDockerLogin: `docker login` stores the refresh token the server hands
// out (an identity token), never the password, and pushes and pulls keep
// working with it.
func (s *stack) testDockerLogin(t *testing.T) {
	user := "docker-user"
	c := newClient(t, "docker", s, user, "")
	c.PW = s.addUser(t, user)
	s.regctl.MustRun(t, "", "user", "grant", user, "dock/*", "--actions", "*")
	s.waitAccess(t, user, c.PW, "dock/app", "pull", "push")

	// What docker login asks the token server for.
	status, resp, err := s.token(t, user, c.PW, url.Values{"offline_token": {"true"}, "client_id": {"docker"}})
	if status != http.StatusOK || err != nil {
		t.Fatalf("offline token request: status %d, %v", status, err)
	}

	r := c.Login(t)
	if r.Code != 0 || !strings.Contains(r.Output(), "Login Succeeded") {
		t.Fatalf("docker login: exit %d, want 0 and \"Login Succeeded\"\n%s", r.Code, r.Output())
	}
	configPath := filepath.Join(c.Dir, "config.json")
	raw, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	var config struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(raw, &config); err != nil {
		t.Fatalf("parse %s: %v\n%s", configPath, err, raw)
	}
	entry, ok := config.Auths[s.reg.Host]
	if !ok {
		t.Fatalf("%s has no entry for %s:\n%s", configPath, s.reg.Host, raw)
	}
	s.secret(entry.IdentityToken)
	auth, _ := base64.StdEncoding.DecodeString(entry.Auth)
	if resp.RefreshToken != "" {
		t.Logf("the token server hands out refresh tokens; docker stored identity token %t", entry.IdentityToken != "")
		if entry.IdentityToken == "" {
			t.Errorf("the server returns a refresh token, but docker stored no identity token:\n%s", raw)
		}
		if strings.Contains(string(raw), c.PW) || strings.Contains(string(auth), c.PW) {
			t.Errorf("docker stored the password although it got an identity token:\n%s", raw)
		}
	} else {
		t.Logf("the token server returned no refresh_token to an offline_token request; docker keeps the password")
		if string(auth) != user+":"+c.PW {
			t.Errorf("no identity token, so config.json should hold the password, but auth decodes to %q", auth)
		}
	}

	c.MustPush(t, "dock/app:1")
	c.MustPull(t, "dock/app:1")
	c.MustPush(t, "dock/app:2")

	if entry.IdentityToken != "" {
		// The identity token, not some cached password, is what works:
		// a corrupted one must be refused.
		bad := strings.Replace(string(raw), entry.IdentityToken, entry.IdentityToken+"corrupt", 1)
		if err := os.WriteFile(configPath, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		clients.ExpectRefused(t, c.Pull(t, "dock/app:1"), "docker pull with a corrupted identity token")
	}
}

// manifestExists reports whether the registry has repo:tag, asking with the
// auditor's token over plain HTTP (no client in between).
func (s *stack) manifestExists(t testing.TB, repo, tag string) bool {
	t.Helper()
	status, tr, err := s.token(t, "auditor", s.pw["auditor"], url.Values{"scope": {"repository:" + repo + ":pull"}})
	if status != http.StatusOK || err != nil {
		t.Fatalf("auditor token for %s: status %d, %v", repo, status, err)
	}
	req, err := http.NewRequest(http.MethodHead, s.reg.URL+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tr.Token)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusNotFound:
		return false
	}
	t.Fatalf("HEAD %s:%s as auditor: status %d", repo, tag, resp.StatusCode)
	return false
}

// tokenResponse is the token endpoint's JSON answer.
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// token asks the token endpoint directly (GET, basic auth) with query
// extra plus service, and returns the status and decoded answer.
func (s *stack) token(t testing.TB, user, pw string, extra url.Values) (int, tokenResponse, error) {
	t.Helper()
	q := url.Values{"service": {s.service}}
	for k, v := range extra {
		q[k] = v
	}
	req, err := http.NewRequest(http.MethodGet, s.serve.URL+"/auth/token?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pw)
	client := &http.Client{Timeout: 30 * time.Second} // bcrypt on a loaded machine
	resp, err := client.Do(req)
	if err != nil {
		return 0, tokenResponse{}, err
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
			return resp.StatusCode, tr, fmt.Errorf("decode token response: %w", err)
		}
		s.secret(tr.Token)
		s.secret(tr.AccessToken)
		s.secret(tr.RefreshToken)
	}
	return resp.StatusCode, tr, nil
}

// grantedActions returns the actions a registry token grants on repository
// repo, from its (unverified) claims.
func grantedActions(token, repo string) ([]string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("token has %d parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("decode token payload: %w", err)
	}
	var claims struct {
		Access []struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		} `json:"access"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("parse token claims: %w", err)
	}
	var actions []string
	for _, a := range claims.Access {
		if a.Type == "repository" && a.Name == repo {
			actions = append(actions, a.Actions...)
		}
	}
	return actions, nil
}

// waitAccess waits until the token server, having reloaded the store, grants
// user the actions want on repo.
func (s *stack) waitAccess(t *testing.T, user, pw, repo string, want ...string) {
	t.Helper()
	scope := "repository:" + repo + ":" + strings.Join(want, ",")
	err := testenv.Poll(30*time.Second, 100*time.Millisecond, func() error {
		status, tr, err := s.token(t, user, pw, url.Values{"scope": {scope}})
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("status %d", status)
		}
		tok := tr.Token
		if tok == "" {
			tok = tr.AccessToken
		}
		got, err := grantedActions(tok, repo)
		if err != nil {
			return err
		}
		for _, a := range want {
			if !slices.Contains(got, a) && !slices.Contains(got, "*") {
				return fmt.Errorf("granted %v, want %v", got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("token for %s with scope %s: %v", user, scope, err)
	}
}
