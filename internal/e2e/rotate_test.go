//go:build integration

package e2e

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/testenv"
)

// Bounds of the pull loop of TestRotateWhilePulling.
const (
	rotations        = 2
	pullsBetween     = 5                // successful pulls before the first and after each switch
	rotateDeadline   = 15 * time.Second // from `keys rotate` to the first token with the new kid
	pullLoopDeadline = 3 * time.Minute
	maxPulls         = 200
)

// TestRotateWhilePulling: `regctl keys rotate` while a client pulls in a
// loop, against each real registry, with no restart of anything. Every pull
// must succeed; tokens issued after the rotation carry the new kid and its
// certificate; a token issued before it keeps working against the registry
// (it carries its own x5c chain to the unchanged CA); the JWKS lists both
// keys. The store is the embedded SQLite one: rotation does not touch it.
//
//	go test -tags integration -run TestRotateWhilePulling ./internal/e2e
func TestRotateWhilePulling(t *testing.T) {
	crane := testenv.Require(t, testenv.EnvCrane, "the path of a crane binary (go-containerregistry v0.22.1)")
	regctl := testenv.BuildRegctl(t)
	for _, v := range []struct {
		version testenv.Version
		env     string
	}{
		{testenv.Distribution2, testenv.EnvRegistry2},
		{testenv.Distribution3, testenv.EnvRegistry3},
	} {
		t.Run(v.version.Name, func(t *testing.T) {
			bin := testenv.Require(t, v.env, "the path of the "+v.version.Name+" registry binary")
			testRotate(t, &env{regctl: regctl, crane: crane}, v.version, bin)
		})
	}
}

// newSQLiteStack is a stack for service with fresh keys (in the returned
// directory) and the embedded store holding the classic rules; the caller
// starts its token server and registry.
func newSQLiteStack(t *testing.T, e *env, service string) (*stack, string) {
	t.Helper()
	dir := t.TempDir()
	keysDir := filepath.Join(dir, "keys")
	testenv.MustRun(t, nil, "", e.regctl, "keys", "generate", "--dir", keysDir)
	s := &stack{
		env:     e,
		regctl:  testenv.Regctl{Bin: e.regctl, Store: "sqlite://" + filepath.Join(dir, "regctl.db")},
		service: service,
		pw:      map[string]string{},
	}
	aclFile := filepath.Join(dir, "acl.yml")
	if err := os.WriteFile(aclFile, []byte(classicACL), 0o600); err != nil {
		t.Fatal(err)
	}
	s.regctl.MustRun(t, "", "acl", "import", aclFile)
	return s, keysDir
}

func testRotate(t *testing.T, e *env, v testenv.Version, bin string) {
	s, keysDir := newSQLiteStack(t, e, "registry.rotate.test")
	bundle, err := os.ReadFile(filepath.Join(keysDir, keys.BundleFile))
	if err != nil {
		t.Fatal(err)
	}
	s.pw["puller"] = s.addUser(t, "puller", "--label", "full-access=rot/*")

	issuer := "regctl-rotate-" + testenv.RandomHex(4)
	s.serve = testenv.StartServe(t, e.regctl, testenv.ServeConfig{
		Issuer: issuer, Service: s.service, KeysDir: keysDir, Store: s.regctl.Store, ReloadInterval: reloadInterval,
	})
	t.Cleanup(func() { s.checkLogSecrets(t) })
	tc := testenv.TokenConfig{Realm: s.serve.Realm, Service: s.service, Issuer: issuer, RootCertBundle: filepath.Join(keysDir, keys.BundleFile)}
	if v.Major >= 3 {
		tc.JWKS = filepath.Join(keysDir, keys.JWKSFile)
	}
	s.reg = testenv.StartRegistry(t, bin, v, tc)
	s.image = testenv.MakeImage(t, e.crane, t.TempDir())
	s.waitAccess(t, "puller", s.pw["puller"], "rot/app", "pull", "push")

	c := newClient(t, "crane", s, "puller", s.pw["puller"])
	c.MustLogin(t)
	if r := c.Push(t, "rot/app:1"); r.Code != 0 {
		t.Fatalf("crane push rot/app:1: exit %d\n%s", r.Code, r.Output())
	}
	kids := []string{s.currentKID(t, keysDir)}
	oldToken, oldKID := s.pullToken(t, "rot/app")
	if oldKID != kids[0] {
		t.Fatalf("token kid %s, keys directory kid %s", oldKID, kids[0])
	}

	// The client: pulls in a loop until told to stop (or a bound is hit).
	var (
		mu       sync.Mutex
		ok, fail int
		failures []string
	)
	done := make(chan struct{})
	stop := make(chan struct{})
	okCount := func() int { mu.Lock(); defer mu.Unlock(); return ok }
	go func() {
		defer close(done)
		deadline := time.Now().Add(pullLoopDeadline)
		for i := 0; i < maxPulls && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := c.Pull(t, "rot/app:1")
			mu.Lock()
			if r.Code == 0 {
				ok++
			} else {
				fail++
				failures = append(failures, fmt.Sprintf("pull %d: exit %d: %s", i, r.Code, strings.TrimSpace(r.Output())))
			}
			mu.Unlock()
		}
	}()
	waitPulls := func(n int) {
		t.Helper()
		err := testenv.Poll(pullLoopDeadline, 50*time.Millisecond, func() error {
			select {
			case <-done:
				return nil // the loop ended early: the checks below report why
			default:
			}
			if got := okCount(); got < n {
				return fmt.Errorf("%d successful pulls, waiting for %d", got, n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	waitPulls(pullsBetween)
	var switchTimes []time.Duration
	for i := range rotations {
		r := testenv.MustRun(t, nil, "", e.regctl, "keys", "rotate", "--dir", keysDir)
		rotated := time.Now()
		newKID := s.currentKID(t, keysDir)
		if newKID == kids[len(kids)-1] || !strings.Contains(r.Stderr, newKID) {
			t.Fatalf("rotation %d: kid %s, previous %s; output:\n%s", i+1, newKID, kids[len(kids)-1], r.Stderr)
		}
		kids = append(kids, newKID)
		if b, _ := os.ReadFile(filepath.Join(keysDir, keys.BundleFile)); string(b) != string(bundle) {
			t.Fatal("keys rotate changed bundle.pem, the registry's trust")
		}
		var last string
		err := testenv.Poll(rotateDeadline, 100*time.Millisecond, func() error {
			if _, last = s.pullToken(t, "rot/app"); last != newKID {
				return fmt.Errorf("token kid %s, want %s", last, newKID)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
		switchTimes = append(switchTimes, time.Since(rotated).Round(time.Millisecond))
		// From now on every token is signed with the new key.
		for range 3 {
			if _, kid := s.pullToken(t, "rot/app"); kid != newKID {
				t.Fatalf("rotation %d: a later token has kid %s, want %s", i+1, kid, newKID)
			}
		}
		waitPulls(okCount() + pullsBetween)
	}
	close(stop)
	<-done

	mu.Lock()
	t.Logf("%s: %d pulls, %d failed, across %d rotations; new kid in tokens after %v (reload interval %s)",
		v.Name, ok+fail, fail, rotations, switchTimes, reloadInterval)
	if fail > 0 {
		t.Errorf("%d of %d pulls failed during rotation:\n%s", fail, ok+fail, strings.Join(failures, "\n"))
	}
	if ok < pullsBetween*(rotations+1) {
		t.Errorf("only %d successful pulls", ok)
	}
	mu.Unlock()

	// A token signed before both rotations is still accepted: it carries
	// its own chain to the CA.
	if status := s.headManifest(t, oldToken, "rot/app", "1"); status != http.StatusOK {
		t.Errorf("HEAD rot/app:1 with a token signed by the first key (kid %s): status %d, want 200", oldKID, status)
	}
	// The JWKS lists the current and the previous key.
	if got := s.jwksKIDs(t); strings.Join(got, " ") != kids[len(kids)-1]+" "+kids[len(kids)-2] {
		t.Errorf("JWKS kids %v, want %s then %s", got, kids[len(kids)-1], kids[len(kids)-2])
	}
	if log := s.serve.Proc.Log(0); strings.Count(log, `msg="signing key reloaded"`) != rotations {
		t.Errorf("regctl serve logged %d reloads, want %d", strings.Count(log, `msg="signing key reloaded"`), rotations)
	}
}

// currentKID is the kid of the signing key in dir.
func (s *stack) currentKID(t *testing.T, dir string) string {
	t.Helper()
	ks, err := keys.Load(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ks.KeyID
}

// pullToken asks the token server for a pull token on repo as puller and
// returns it with its header's kid, after checking that the x5c leaf is the
// key the kid names.
func (s *stack) pullToken(t *testing.T, repo string) (string, string) {
	t.Helper()
	status, tr, err := s.token(t, "puller", s.pw["puller"], url.Values{"scope": {"repository:" + repo + ":pull"}})
	if status != http.StatusOK || err != nil {
		t.Fatalf("token: status %d, %v", status, err)
	}
	head, _, _ := strings.Cut(tr.Token, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		KID string   `json:"kid"`
		X5C []string `json:"x5c"`
	}
	if err := json.Unmarshal(b, &h); err != nil || len(h.X5C) != 2 {
		t.Fatalf("token header %s: %v", b, err)
	}
	der, err := base64.StdEncoding.DecodeString(h.X5C[0])
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if kid, _ := keys.LibtrustKeyID(leaf.PublicKey); kid != h.KID {
		t.Fatalf("token kid %s, x5c leaf kid %s", h.KID, kid)
	}
	return tr.Token, h.KID
}

// headManifest asks the registry for repo:tag with a bearer token and
// returns the status.
func (s *stack) headManifest(t *testing.T, token, repo, tag string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodHead, s.reg.URL+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// jwksKIDs returns the kids regctl serve publishes at /auth/jwks.json.
func (s *stack) jwksKIDs(t *testing.T) []string {
	t.Helper()
	resp, err := http.Get(s.serve.URL + "/auth/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KID)
	}
	return out
}
