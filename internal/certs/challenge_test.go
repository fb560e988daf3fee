package certs_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/certs"
)

func TestProbeWebroot(t *testing.T) {
	ctx := context.Background()
	webroot := t.TempDir()
	var gotHost string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost = r.Host
		http.FileServer(http.Dir(webroot)).ServeHTTP(w, r)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	if err := certs.ProbeWebroot(ctx, webroot, addr, "registry.example.com"); err != nil {
		t.Fatalf("probe of a server serving the webroot: %v", err)
	}
	if gotHost != "registry.example.com" {
		t.Errorf("Host header %q", gotHost)
	}
	// The probe file is gone again.
	entries, _ := os.ReadDir(filepath.Join(webroot, ".well-known", "acme-challenge"))
	if len(entries) != 0 {
		t.Errorf("probe left %d files", len(entries))
	}

	mode, why := certs.ResolveChallenge(ctx, certs.ChallengeConfig{Webroot: webroot, ProbeAddress: addr}, "registry.example.com")
	if mode != certs.ChallengeWebroot || why != nil {
		t.Errorf("certs.ResolveChallenge = %s, %v; want webroot", mode, why)
	}

	// Another directory than the one served: standalone.
	other := t.TempDir()
	mode, why = certs.ResolveChallenge(ctx, certs.ChallengeConfig{Webroot: other, ProbeAddress: addr}, "registry.example.com")
	if mode != certs.ChallengeStandalone || why == nil || !strings.Contains(why.Error(), "does not serve") {
		t.Errorf("certs.ResolveChallenge with a webroot not served = %s, %v", mode, why)
	}
	// Nothing listening: standalone.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	mode, why = certs.ResolveChallenge(ctx, certs.ChallengeConfig{Webroot: webroot, ProbeAddress: closed}, "x")
	if mode != certs.ChallengeStandalone || why == nil || !strings.Contains(why.Error(), "no web server") {
		t.Errorf("certs.ResolveChallenge without a server = %s, %v", mode, why)
	}
	// Missing webroot: standalone.
	mode, why = certs.ResolveChallenge(ctx, certs.ChallengeConfig{Webroot: filepath.Join(webroot, "missing"), ProbeAddress: addr}, "x")
	if mode != certs.ChallengeStandalone || why == nil {
		t.Errorf("certs.ResolveChallenge with a missing webroot = %s, %v", mode, why)
	}
	// Forced modes are kept.
	for _, m := range []certs.ChallengeMode{certs.ChallengeStandalone, certs.ChallengeWebroot, certs.ChallengeDNS} {
		if got, _ := certs.ResolveChallenge(ctx, certs.ChallengeConfig{Mode: m, ProbeAddress: closed}, "x"); got != m {
			t.Errorf("certs.ResolveChallenge(%s) = %s", m, got)
		}
	}
}

func TestParseChallengeMode(t *testing.T) {
	for in, want := range map[string]certs.ChallengeMode{"": certs.ChallengeAuto, "auto": certs.ChallengeAuto, "Standalone": certs.ChallengeStandalone, "webroot": certs.ChallengeWebroot, "dns": certs.ChallengeDNS} {
		if got, err := certs.ParseChallengeMode(in); err != nil || got != want {
			t.Errorf("certs.ParseChallengeMode(%q) = %s, %v", in, got, err)
		}
	}
	if _, err := certs.ParseChallengeMode("tls-alpn"); err == nil {
		t.Error("tls-alpn accepted")
	}
}

func TestDNSProviders(t *testing.T) {
	if got := strings.Join(certs.DNSProviderNames(), ","); got != "exec,httpreq" {
		t.Errorf("providers = %s", got)
	}
	if _, err := certs.NewDNSProvider("route53"); err == nil || !strings.Contains(err.Error(), "exec, httpreq") {
		t.Errorf("unknown provider: %v", err)
	}
	t.Setenv("EXEC_PATH", "")
	if _, err := certs.NewDNSProvider("exec"); err == nil || !strings.Contains(err.Error(), "EXEC_PATH") {
		t.Errorf("exec without EXEC_PATH: %v", err)
	}
	t.Setenv("EXEC_PATH", "/bin/true")
	if _, err := certs.NewDNSProvider("exec"); err != nil {
		t.Errorf("exec with EXEC_PATH: %v", err)
	}
	if _, err := certs.NewLegoIssuer(certs.ACMEConfig{Layout: certs.Layout{Root: t.TempDir()}, Challenge: certs.ChallengeConfig{Mode: certs.ChallengeDNS}}); err == nil {
		t.Error("challenge dns without a provider accepted")
	}
}

// TestLegoIssuerHonoursContext: lego's API takes no context, but every
// request the issuer makes carries it, so a hanging CA cannot hang a run.
func TestLegoIssuerHonoursContext(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	iss, err := certs.NewLegoIssuer(certs.ACMEConfig{
		Directory:  srv.URL + "/dir",
		Layout:     certs.Layout{Root: t.TempDir()},
		HTTPClient: srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = iss.Obtain(ctx, certs.Request{Domains: []string{"a.example"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}
