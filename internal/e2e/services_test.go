//go:build integration

package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/testenv"
)

// TestOneTokenServerTwoRegistries: one `regctl serve --service A --service
// B` in front of two real registries, distribution 2.8 as service A and
// 3.1.2 as service B. A rule with a service condition lets every user pull
// cache/* on B only; a user's grant pushes team/* on both. crane pushes
// to each; the cache rule holds on B and not on A; and a token issued for
// one registry is refused by the other (its aud names the first).
//
//	go test -tags integration -run TestOneTokenServerTwoRegistries ./internal/e2e
func TestOneTokenServerTwoRegistries(t *testing.T) {
	crane := testenv.Require(t, testenv.EnvCrane, "the path of a crane binary (go-containerregistry v0.22.1)")
	bin2 := testenv.Require(t, testenv.EnvRegistry2, "the path of Debian's docker-registry (distribution 2.8)")
	bin3 := testenv.Require(t, testenv.EnvRegistry3, "the path of the distribution 3 registry binary")
	regctl := testenv.BuildRegctl(t)

	dir := t.TempDir()
	keysDir := filepath.Join(dir, "keys")
	testenv.MustRun(t, nil, "", regctl, "keys", "generate", "--dir", keysDir)
	const svcA, svcB, issuer = "registry-a.test", "registry-b.test", "regctl-two"
	rc := testenv.Regctl{Bin: regctl, Store: "sqlite://" + filepath.Join(dir, "regctl.db")}
	rules := filepath.Join(dir, "acl.yml")
	if err := os.WriteFile(rules, []byte("- seq: 10\n  match: {account: \"/.+/\", service: \""+svcB+"\", name: \"cache/*\"}\n  actions: [pull]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rc.MustRun(t, "", "acl", "import", rules)
	const pw = "two-registries-pw"
	rc.MustRun(t, pw+"\n", "user", "add", "dev", "--password-stdin")
	rc.MustRun(t, "", "user", "grant", "dev", "team/*", "--actions", "pull,push")
	rc.MustRun(t, "", "user", "grant", "dev", "cache/*", "--actions", "push")

	serve := testenv.StartServe(t, regctl, testenv.ServeConfig{
		Issuer: issuer, Service: svcA, ExtraServices: []string{svcB}, KeysDir: keysDir, Store: rc.Store,
	})
	bundle := filepath.Join(keysDir, keys.BundleFile)
	regA := testenv.StartRegistry(t, bin2, testenv.Distribution2, testenv.TokenConfig{Realm: serve.Realm, Service: svcA, Issuer: issuer, RootCertBundle: bundle})
	regB := testenv.StartRegistry(t, bin3, testenv.Distribution3, testenv.TokenConfig{Realm: serve.Realm, Service: svcB, Issuer: issuer, RootCertBundle: bundle})

	image := testenv.MakeImage(t, crane, t.TempDir())
	for _, reg := range []*testenv.Registry{regA, regB} {
		s := &stack{env: &env{regctl: regctl, crane: crane}, regctl: rc, serve: serve, reg: reg, image: image, pw: map[string]string{"dev": pw}}
		c := newClient(t, "crane", s, "dev", pw)
		c.MustLogin(t)
		c.MustPush(t, "team/app:1")
		if reg == regB {
			// crane pushes only where it may also pull: the rule for B.
			c.MustPush(t, "cache/base:1")
		}
	}

	// token asks for scope on service, as a registry's client would.
	token := func(service, scope string) string {
		t.Helper()
		q := url.Values{"service": {service}, "scope": {scope}}
		req, _ := http.NewRequest(http.MethodGet, serve.URL+"/auth/token?"+q.Encode(), nil)
		req.SetBasicAuth("dev", pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tr tokenResponse
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&tr) != nil {
			t.Fatalf("token for %s %s: status %d", service, scope, resp.StatusCode)
		}
		return tr.Token
	}
	head := func(reg *testenv.Registry, tok, repo string) int {
		t.Helper()
		return (&stack{reg: reg}).headManifest(t, tok, repo, "1")
	}
	for _, tt := range []struct {
		what    string
		reg     *testenv.Registry
		service string
		repo    string
		want    int
	}{
		{"pull team/app on A with A's token", regA, svcA, "team/app", http.StatusOK},
		{"pull team/app on B with B's token", regB, svcB, "team/app", http.StatusOK},
		{"pull cache/base on B (the rule for B)", regB, svcB, "cache/base", http.StatusOK},
		{"pull cache/base on A (no rule for A)", regA, svcA, "cache/base", http.StatusUnauthorized},
		{"B's token at A", regA, svcB, "team/app", http.StatusUnauthorized},
		{"A's token at B", regB, svcA, "team/app", http.StatusUnauthorized},
	} {
		if got := head(tt.reg, token(tt.service, "repository:"+tt.repo+":pull"), tt.repo); got != tt.want {
			t.Errorf("%s: HEAD %d, want %d", tt.what, got, tt.want)
		}
	}
}
