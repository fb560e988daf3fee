//go:build integration

package render_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/internal/testenv"
)

// TestTokenConfigRuns starts the real `regctl serve` as the compose file
// does (`serve` with REGCTL_CONFIG naming the rendered token-server.yaml),
// with the container paths and addresses pointed at a temporary directory
// and loopback ports, and checks what the rendered settings turn on: the
// metrics listener (with /readyz, and not on the port nginx proxies), the
// audit log (mode 0600, read by `regctl audit tail`), and the compose
// health check command.
//
//	go test -tags integration -run TestTokenConfigRuns ./internal/render
func TestTokenConfigRuns(t *testing.T) {
	regctl := testenv.BuildRegctl(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			c := v.config(t)
			dir := t.TempDir()
			kd := filepath.Join(dir, "keys")
			testenv.MustRun(t, nil, "", regctl, "keys", "generate", "--dir", kd)
			for _, sub := range []string{"data", "logs"} {
				if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
					t.Fatal(err)
				}
			}

			d := render.NewTokenData(c, testSecrets)
			listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			metrics := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			audit := filepath.Join(dir, "logs", "audit.log")
			d.Listen, d.MetricsListen, d.KeysDir, d.AuditLog = listen, metrics, kd, audit
			d.Store = "sqlite://" + filepath.Join(dir, "data", "regctl.db")
			conf, err := render.Execute("token-server.yaml.tmpl", d)
			if err != nil {
				t.Fatal(err)
			}
			confPath := filepath.Join(dir, "token-server.yaml")
			writeFile(t, confPath, conf, 0o600)
			env := []string{"REGCTL_CONFIG=" + confPath}

			serve := testenv.Start(t, "regctl-serve", env, regctl, "serve")
			serve.WaitReady(t, 30*time.Second, testenv.HTTPCheck("http://"+metrics+"/readyz", 200))
			// The compose health check, with the URL compose.yaml gives it.
			health, err := url.Parse(render.NewComposeData(c).TokenHealthURL)
			if err != nil {
				t.Fatal(err)
			}
			health.Host = listen
			testenv.MustRun(t, env, "", regctl, "healthcheck", health.String())

			q := url.Values{"service": {c.TokenService()}, "scope": {"repository:app:pull"}}
			req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/auth/token?"+q.Encode(), nil)
			req.SetBasicAuth("bob", "wrong")
			if code, _ := httpDo(t, req); code != http.StatusUnauthorized {
				t.Fatalf("token request with a wrong password: %d, want 401", code)
			}

			// Metrics on their own address only.
			get := func(u string) (int, string) {
				req, _ := http.NewRequest(http.MethodGet, u, nil)
				return httpDo(t, req)
			}
			if code, body := get("http://" + metrics + "/metrics"); code != 200 || !strings.Contains(body, "regctl_token_requests_total") {
				t.Errorf("GET /metrics on the metrics address: %d, no regctl_token_requests_total:\n%.2000s", code, body)
			}
			if code, _ := get("http://" + listen + "/metrics"); code != http.StatusNotFound {
				t.Errorf("GET /metrics on the token address nginx proxies: %d, want 404", code)
			}

			// The audit log: written in the background, so wait for it.
			err = testenv.Poll(10*time.Second, 100*time.Millisecond, func() error {
				b, err := os.ReadFile(audit)
				if err != nil {
					return err
				}
				if !strings.Contains(string(b), `"status":401`) {
					return fmt.Errorf("no 401 decision in the audit log yet: %q", b)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("audit log: %v\n--- serve log:\n%s", err, serve.Log(8<<10))
			}
			if fi, err := os.Stat(audit); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("audit log mode: %v %v, want 0600", fi.Mode().Perm(), err)
			}
			r := testenv.MustRun(t, nil, "", regctl, "audit", "tail", "--file", audit, "--user", "bob", "-n", "5")
			if !strings.Contains(r.Stdout, `"user":"bob"`) || !strings.Contains(r.Stdout, `"status":401`) {
				t.Errorf("regctl audit tail --user bob:\n%s", r.Stdout)
			}
		})
	}
}

func httpDo(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
