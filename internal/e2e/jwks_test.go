//go:build integration

package e2e

import (
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/testenv"
	"github.com/regctl/regctl/internal/testenv/clients"
)

// TestJWKSOnlyRegistry: distribution 3 configured with auth.token.jwks and
// no rootcertbundle. With `regctl serve --key-format jwks` (tokens without
// x5c, their kid in the JWKS) crane pushes and pulls; with the default x5c
// format the same registry refuses every token, because distribution 3
// checks a token's x5c against rootcertbundle whenever it has one. That is
// why jwks is a format of its own and x5c stays the default: 2.8 has no
// jwks at all.
//
//	go test -tags integration -run TestJWKSOnlyRegistry ./internal/e2e
func TestJWKSOnlyRegistry(t *testing.T) {
	crane := testenv.Require(t, testenv.EnvCrane, "the path of a crane binary (go-containerregistry v0.22.1)")
	bin := testenv.Require(t, testenv.EnvRegistry3, "the path of the distribution 3 registry binary")
	regctl := testenv.BuildRegctl(t)
	for _, tt := range []struct {
		format string
		works  bool
	}{
		{config.KeyFormatJWKS, true},
		{config.KeyFormatX5C, false},
	} {
		t.Run(tt.format, func(t *testing.T) {
			t.Parallel()
			s, keysDir := newSQLiteStack(t, &env{regctl: regctl, crane: crane}, "registry.jwks.test")
			s.pw["pusher"] = s.addUser(t, "pusher", "--label", "full-access=jw/*")
			issuer := "regctl-jwks"
			s.serve = testenv.StartServe(t, regctl, testenv.ServeConfig{
				Issuer: issuer, Service: s.service, KeysDir: keysDir, Store: s.regctl.Store, KeyFormat: tt.format,
			})
			s.reg = testenv.StartRegistry(t, bin, testenv.Distribution3, testenv.TokenConfig{
				Realm: s.serve.Realm, Service: s.service, Issuer: issuer, JWKS: filepath.Join(keysDir, keys.JWKSFile),
			})
			s.image = testenv.MakeImage(t, crane, t.TempDir())
			// The registry's verdict on one of the server's tokens, asked
			// directly: GET /v2/ with it.
			status, tr, err := s.token(t, "pusher", s.pw["pusher"], url.Values{"scope": {"repository:jw/app:pull"}})
			if status != http.StatusOK || err != nil {
				t.Fatalf("token: status %d, %v", status, err)
			}
			req, _ := http.NewRequest(http.MethodGet, s.reg.URL+"/v2/", nil)
			req.Header.Set("Authorization", "Bearer "+tr.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if want := map[bool]int{true: http.StatusOK, false: http.StatusUnauthorized}[tt.works]; resp.StatusCode != want {
				t.Fatalf("GET /v2/ with a %s token: %d, want %d\n--- registry log:\n%s", tt.format, resp.StatusCode, want, s.reg.Proc.Log(4<<10))
			}

			c := newClient(t, "crane", s, "pusher", s.pw["pusher"])
			c.MustLogin(t)
			push := c.Push(t, "jw/app:1")
			if !tt.works {
				clients.ExpectDenied(t, push, "crane push with x5c tokens to a jwks-only registry")
				return
			}
			if push.Code != 0 {
				t.Fatalf("crane push with jwks tokens: exit %d\n%s\n--- registry log:\n%s", push.Code, push.Output(), s.reg.Proc.Log(4<<10))
			}
			c.MustPull(t, "jw/app:1")
		})
	}
}
