package render_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/internal/testenv"
)

// TestRegistryConfigRuns starts the real registries (Debian's distribution
// 2.8 and distribution v3) from the rendered config.yml, with its paths
// and listeners moved to a temporary directory and loopback ports, and
// checks the token challenge and the health listener.
func TestRegistryConfigRuns(t *testing.T) {
	for _, r := range []struct {
		name, env, bin, what string
	}{
		{"distribution-2.8", testenv.EnvRegistry2, "docker-registry", "Debian's docker-registry (apt-get install -y docker-registry)"},
		{"distribution-3", testenv.EnvRegistry3, "registry", "a distribution v3 registry binary (scripts/test-deps.sh builds one)"},
	} {
		t.Run(r.name, func(t *testing.T) {
			bin := testenv.RequireBinary(t, r.env, r.bin, r.what)
			dir := t.TempDir()
			kd := filepath.Join(dir, "keys")
			if err := keys.Generate(kd, keys.ES256, time.Now()); err != nil {
				t.Fatal(err)
			}
			c := variants[0].config(t)
			d := render.NewRegistryData(c, testSecrets)
			port, debug := testenv.FreePort(t), testenv.FreePort(t)
			d.Addr = fmt.Sprintf("127.0.0.1:%d", port)
			d.DebugAddr = fmt.Sprintf("127.0.0.1:%d", debug)
			d.StorageDir = filepath.Join(dir, "storage")
			d.RootCertBundle = filepath.Join(kd, keys.BundleFile)
			d.JWKS = filepath.Join(kd, keys.JWKSFile)
			conf, err := render.Execute("registry.yml.tmpl", d)
			if err != nil {
				t.Fatal(err)
			}
			cp := filepath.Join(dir, "config.yml")
			if err := os.WriteFile(cp, conf, 0o600); err != nil {
				t.Fatal(err)
			}
			env := []string{"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none"}
			p := testenv.Start(t, r.name, env, bin, "serve", cp)
			p.WaitReady(t, 30*time.Second, testenv.HTTPCheck(fmt.Sprintf("http://127.0.0.1:%d/debug/health", debug), 200))
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v2/", port))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			ch := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != 401 || !strings.Contains(ch, `realm="`+c.Realm()+`"`) || !strings.Contains(ch, `service="`+c.TokenService()+`"`) {
				t.Errorf("/v2/: %d %q; want 401 with realm %s and service %s", resp.StatusCode, ch, c.Realm(), c.TokenService())
			}
			// nginx adds the security headers to every answer: the
			// registry adding its own would send them twice.
			if v := resp.Header.Values("X-Content-Type-Options"); len(v) != 0 {
				t.Errorf("the registry sends X-Content-Type-Options %q itself; nginx already adds it", v)
			}
		})
	}
}
