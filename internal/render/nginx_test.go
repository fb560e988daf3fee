package render_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/render"
	"github.com/regctl/regctl/internal/render/rendertest"
	"github.com/regctl/regctl/internal/testenv"
)

// nginxSite is rendertest.Site under the short names this package's
// tests use.
type nginxSite struct {
	*rendertest.Site
	dir, conf          string
	data               render.NginxData
	http, https, probe int
	roots              *x509.CertPool
}

// newNginxSite is rendertest.NewSite with self-signed certificates.
func newNginxSite(t *testing.T, c *config.Config, registry, token string) *nginxSite {
	t.Helper()
	s := rendertest.NewSite(t, c, registry, []string{token}, nil)
	return &nginxSite{Site: s, dir: s.Dir, conf: s.Conf, data: s.Data, http: s.HTTP, https: s.HTTPS, probe: s.Probe, roots: s.Roots}
}

func (s *nginxSite) args(extra ...string) []string { return s.Args(extra...) }

func writeFile(t testing.TB, p string, data []byte, mode os.FileMode) {
	t.Helper()
	rendertest.WriteFile(t, p, data, mode)
}

func nginxBinary(t *testing.T) string {
	t.Helper()
	return rendertest.NginxBinary(t)
}

// TestNginxConfigTest runs `nginx -t` on every variant.
func TestNginxConfigTest(t *testing.T) {
	bin := nginxBinary(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			s := newNginxSite(t, v.config(t), "127.0.0.1:5000", "127.0.0.1:5001")
			r := testenv.Run(t, nil, "", bin, s.args("-t")...)
			if r.Code != 0 || !strings.Contains(r.Stderr, "test is successful") {
				t.Fatalf("nginx -t failed (exit %d):\n%s", r.Code, r.Stderr)
			}
			if strings.Contains(r.Stderr, "[warn]") {
				t.Errorf("nginx -t warns:\n%s", r.Stderr)
			}
		})
	}
}

// TestNginxServes starts nginx from the rendered configuration in front of
// stand-in upstreams and checks what clients see.
func TestNginxServes(t *testing.T) {
	bin := nginxBinary(t)
	for _, v := range variants[:2] {
		t.Run(v.name, func(t *testing.T) {
			c := v.config(t)
			var registryHost string
			registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				registryHost = r.Host + " " + r.Header.Get("X-Forwarded-Proto") + " " + r.Header.Get("X-Forwarded-For")
				w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+c.Realm()+`"`)
				w.WriteHeader(http.StatusUnauthorized)
			}))
			defer registry.Close()
			token := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch _, pw, _ := r.BasicAuth(); pw {
				case "right":
					fmt.Fprint(w, `{"token":"x"}`)
				case "limited": // as regctl serve answers a rate-limited client
					w.Header().Set("Retry-After", "6")
					w.WriteHeader(http.StatusTooManyRequests)
				default: // a failed login, marked for nginx's log as regctl serve does
					w.Header().Set("X-Regctl-Login", "failed")
					w.WriteHeader(http.StatusUnauthorized)
				}
			}))
			defer token.Close()
			s := newNginxSite(t, c, strings.TrimPrefix(registry.URL, "http://"), strings.TrimPrefix(token.URL, "http://"))
			p := testenv.Start(t, "nginx", nil, bin, s.args("-g", "daemon off;")...)
			p.WaitReady(t, 20*time.Second, testenv.HTTPCheck(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.probe), 200))

			plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
			get := func(client *http.Client, url, host string) (*http.Response, string) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Host = host
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("GET %s (Host %s): %v", url, host, err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, string(b)
			}

			// Port 80: a 301 to https for everything but ACME challenges.
			resp, _ := get(plain, fmt.Sprintf("http://127.0.0.1:%d/v2/some/path?x=1", s.http), c.Domains.Registry)
			if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "https://"+c.Domains.Registry+"/v2/some/path?x=1" {
				t.Errorf("port 80: %d Location %q, want 301 to https", resp.StatusCode, resp.Header.Get("Location"))
			}
			writeFile(t, filepath.Join(s.data.WebRoot, ".well-known/acme-challenge/tok123"), []byte("tok123.thumb"), 0o644)
			resp, body := get(plain, fmt.Sprintf("http://127.0.0.1:%d/.well-known/acme-challenge/tok123", s.http), c.Domains.Registry)
			if resp.StatusCode != 200 || body != "tok123.thumb" {
				t.Errorf("ACME challenge: %d %q", resp.StatusCode, body)
			}
			resp, _ = get(plain, fmt.Sprintf("http://127.0.0.1:%d/.well-known/acme-challenge/missing", s.http), c.Domains.Registry)
			if resp.StatusCode != 404 {
				t.Errorf("missing ACME challenge: %d, want 404", resp.StatusCode)
			}

			// TLS: the registry through nginx. The dialer ignores the name, so
			// nothing is resolved.
			tlsClient := func(serverName string, maxVersion uint16) *http.Client {
				return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
					TLSClientConfig: &tls.Config{RootCAs: s.roots, ServerName: serverName, MaxVersion: maxVersion},
					DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
						var d net.Dialer
						return d.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", s.https))
					},
				}}
			}
			reg := tlsClient(c.Domains.Registry, 0)
			resp, _ = get(reg, "https://"+c.Domains.Registry+"/v2/", c.Domains.Registry)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), c.Realm()) {
				t.Errorf("/v2/: %d, challenge %q; want the registry's 401", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=63072000" {
				t.Errorf("HSTS %q", got)
			}
			if resp.Header.Get("X-XSS-Protection") != "" {
				t.Error("X-XSS-Protection sent")
			}
			if want := c.Domains.Registry + " https 127.0.0.1"; registryHost != want {
				t.Errorf("registry saw Host, X-Forwarded-Proto, X-Forwarded-For = %q, want %q", registryHost, want)
			}
			if resp, _ = get(reg, "https://"+c.Domains.Registry+"/", c.Domains.Registry); resp.StatusCode != 404 {
				t.Errorf("/ on the registry: %d, want 404", resp.StatusCode)
			}

			// The token endpoint, on its own name or under /auth.
			auth := tlsClient(c.AuthDomain(), 0)
			status := map[string]int{"wrong": 401, "limited": 429, "right": 200}
			for _, pw := range []string{"wrong", "limited", "wrong", "limited", "right"} {
				req, _ := http.NewRequest(http.MethodGet, "https://"+c.AuthDomain()+"/auth/token?service=x&scope=repository:a:pull", nil)
				req.SetBasicAuth("bob", pw)
				resp, err := auth.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if want := status[pw]; resp.StatusCode != want {
					t.Errorf("token request with %s password: %d, want %d", pw, resp.StatusCode, want)
				}
			}

			// Unknown names get no certificate; TLS 1.2 only with intermediate.
			if _, err := tlsClient("unknown.example.com", 0).Get("https://unknown.example.com/"); err == nil {
				t.Error("a TLS handshake for an unknown name succeeded")
			}
			_, err := tlsClient(c.Domains.Registry, tls.VersionTLS12).Get("https://" + c.Domains.Registry + "/v2/")
			if modern := c.TLS.Profile == config.ProfileModern; (err == nil) == modern {
				t.Errorf("TLS 1.2 with profile %s: err = %v", c.TLS.Profile, err)
			}

			// nginx writes access logs asynchronously only on buffer flush;
			// without buffering they are there now.
			authLog, err := os.ReadFile(s.data.AuthLog)
			if err != nil {
				t.Fatal(err)
			}
			if n, m := strings.Count(string(authLog), " status=401 "), strings.Count(string(authLog), " status=429 "); n != 2 || m != 2 {
				t.Errorf("auth log has %d failures and %d rate-limited requests, want 2 and 2:\n%s", n, m, authLog)
			}
			if f2b := fail2banRegex(t, s.data.AuthLog, c); f2b != nil {
				// The 401s and the 429s count; the 200 does not.
				if f2b.matched != 4 || len(f2b.hosts) != 4 || slices.ContainsFunc(f2b.hosts, func(h string) bool { return h != "127.0.0.1" }) {
					t.Errorf("fail2ban-regex on nginx's token log: %d matched %v, want 4 from 127.0.0.1:\n%s", f2b.matched, f2b.hosts, authLog)
				}
				// The main log has the registry's normal 401 on /v2/ and the
				// token requests in another format: nothing to ban.
				if f2b := fail2banRegex(t, s.data.AccessLog, c); f2b.matched != 0 {
					t.Errorf("fail2ban-regex matched %d lines of the main access log", f2b.matched)
				}
			}
		})
	}
}

// TestNginxHTTP2Directive: the HTTP/2 syntax follows the nginx version the
// image's tag names, so neither an old nginx fails on `http2 on;` nor a
// new one warns about `listen … http2` at every start.
func TestNginxHTTP2Directive(t *testing.T) {
	for _, tt := range []struct {
		image, version string
		on             bool
	}{
		{"nginx:1.28-alpine", "1.28", true},
		{"nginx:1.25.1", "1.25.1", true},
		{"nginx:1.25.0-bookworm", "1.25.0", false},
		{"nginx:1.22", "1.22", false},
		{"docker.io/library/nginx:1.24.0@sha256:0123", "1.24.0", false},
		{"registry.local:5000/nginx", "", true},
		{"registry.local:5000/nginx:1.26", "1.26", true},
		{"nginx:mainline", "", true},
		{"regctl-test/nginx:trixie", "", true},
		{"nginx", "", true},
	} {
		v := render.NginxImageVersion(tt.image)
		if v != tt.version || render.NginxHasHTTP2Directive(v) != tt.on {
			t.Errorf("%s: version %q (on %t), want %q (on %t)", tt.image, v, render.NginxHasHTTP2Directive(v), tt.version, tt.on)
		}
		c := config.Defaults()
		c.Images.Nginx = tt.image
		d := render.NewNginxData(&c)
		d.Servers = []render.NginxServer{{Name: "registry.example.com", Registry: true}}
		conf, err := render.Execute("nginx.conf.tmpl", d)
		if err != nil {
			t.Fatal(err)
		}
		hasOn, hasListen := strings.Contains(string(conf), "http2 on;"), strings.Contains(string(conf), "ssl http2")
		if hasOn != tt.on || hasListen == tt.on {
			t.Errorf("%s: `http2 on;` %t, `listen … ssl http2` %t", tt.image, hasOn, hasListen)
		}
	}
}
