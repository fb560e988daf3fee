//go:build integration

package render_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/internal/testenv"
)

// TestTokenConfigExtremes: a regctl.yaml that validates also starts. For
// the extremes of every range of the settings that reach `regctl serve`
// (token.lifetime, token.refresh-lifetime, token.issuer, token.service,
// token.log-format, token.key-algorithm), it renders token-server.yaml,
// starts the real `regctl serve` from it, and logs in as `docker login`
// does: the access token lives exactly token.lifetime, is issued by
// token.issuer for token.service, and a refresh token is handed out. Just
// outside each range, config.Validate refuses the file and names the key.
//
//	go test -tags integration -run TestTokenConfigExtremes ./internal/render
func TestTokenConfigExtremes(t *testing.T) {
	regctl := testenv.BuildRegctl(t)
	word := func(n int) string { return strings.Repeat("a", n-1) + "z" }
	ok := []struct {
		name   string
		mutate func(*config.Config)
	}{
		{"shortest lifetime", func(c *config.Config) { c.Token.Lifetime = config.MinTokenLifetime }},
		{"longest lifetime", func(c *config.Config) { c.Token.Lifetime = config.MaxTokenLifetime }},
		{"refresh until revoked", func(c *config.Config) { c.Token.RefreshLifetime = 0 }},
		{"longest refresh", func(c *config.Config) { c.Token.RefreshLifetime = math.MaxInt64 }},
		{"shortest names", func(c *config.Config) { c.Token.Issuer, c.Token.Service = "i", "s" }},
		{"longest names", func(c *config.Config) { c.Token.Issuer, c.Token.Service = word(128), "x._:/-"+word(122) }},
		{"text log, rs256", func(c *config.Config) { c.Token.LogFormat, c.Token.KeyAlgorithm = "text", "rs256" }},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := config.Defaults()
			c.Domains.Registry = "registry.example.com"
			c.Database.Backend = config.BackendSQLite
			tt.mutate(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("config.Validate: %v", err)
			}
			checkServeStarts(t, regctl, &c)
		})
	}

	bad := []struct {
		key    string
		mutate func(*config.Config)
	}{
		{"token.lifetime", func(c *config.Config) { c.Token.Lifetime = config.MinTokenLifetime - time.Millisecond }},
		{"token.lifetime", func(c *config.Config) { c.Token.Lifetime = config.MaxTokenLifetime + time.Second }},
		{"token.refresh-lifetime", func(c *config.Config) { c.Token.RefreshLifetime = -time.Second }},
		{"token.issuer", func(c *config.Config) { c.Token.Issuer = "" }},
		{"token.issuer", func(c *config.Config) { c.Token.Issuer = word(129) }},
		{"token.service", func(c *config.Config) { c.Token.Service = word(129) }},
		{"token.log-format", func(c *config.Config) { c.Token.LogFormat = "logfmt" }},
		{"token.key-algorithm", func(c *config.Config) { c.Token.KeyAlgorithm = "hs256" }},
	}
	for _, tt := range bad {
		c := config.Defaults()
		c.Domains.Registry = "registry.example.com"
		tt.mutate(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tt.key+": ") {
			t.Errorf("%s just outside its range: config.Validate = %v, want an error naming %s", tt.key, err, tt.key)
		}
	}
}

// checkServeStarts renders c's token-server.yaml (addresses and paths
// moved to a temporary directory and loopback), starts regctl serve from
// it and logs in as docker login does.
func checkServeStarts(t *testing.T, regctl string, c *config.Config) {
	t.Helper()
	dir := t.TempDir()
	kd := filepath.Join(dir, "keys")
	testenv.MustRun(t, nil, "", regctl, "keys", "generate", "--dir", kd, "--alg", c.Token.KeyAlgorithm)
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	store := "sqlite://" + filepath.Join(dir, "regctl.db")
	rc := testenv.Regctl{Bin: regctl, Store: store}
	rc.MustRun(t, "- seq: 10\n  match: {account: \"*\"}\n  actions: [\"*\"]\n", "acl", "import", "-")
	const pw = "extreme-s3cret"
	rc.MustRun(t, pw+"\n", "user", "add", "bob", "--password-stdin")

	d := render.NewTokenData(c, testSecrets)
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	metrics := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	d.Listen, d.MetricsListen, d.KeysDir, d.Store = listen, metrics, kd, store
	d.AuditLog = filepath.Join(dir, "logs", "audit.log")
	conf, err := render.Execute("token-server.yaml.tmpl", d)
	if err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "token-server.yaml")
	writeFile(t, confPath, conf, 0o600)
	serve := testenv.Start(t, "regctl-serve", []string{"REGCTL_CONFIG=" + confPath}, regctl, "serve")
	serve.WaitReady(t, 30*time.Second, testenv.HTTPCheck("http://"+metrics+"/readyz", 200))

	q := url.Values{"service": {c.TokenService()}, "scope": {"repository:app:pull"}, "offline_token": {"true"}, "client_id": {"docker"}}
	req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/auth/token?"+q.Encode(), nil)
	req.SetBasicAuth("bob", pw)
	code, body := httpDo(t, req)
	if code != http.StatusOK {
		t.Fatalf("docker login's token request: %d %s\n--- serve log:\n%s", code, body, serve.Log(8<<10))
	}
	var resp struct {
		Token        string `json:"token"`
		ExpiresIn    int64  `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(resp.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS", resp.Token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Iss string `json:"iss"`
		Aud string `json:"aud"`
		Iat int64  `json:"iat"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	life := int64(c.Token.Lifetime / time.Second)
	if claims.Iss != c.Token.Issuer || claims.Aud != c.TokenService() || claims.Exp-claims.Iat != life || resp.ExpiresIn != life {
		t.Errorf("token: iss %q aud %q lives %ds (expires_in %d); want %q, %q, %ds", claims.Iss, claims.Aud, claims.Exp-claims.Iat, resp.ExpiresIn, c.Token.Issuer, c.TokenService(), life)
	}
	if resp.RefreshToken == "" {
		t.Error("no refresh token for docker login")
	}
}
