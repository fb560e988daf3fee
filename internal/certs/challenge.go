package certs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/http01"
	dnsexec "github.com/go-acme/lego/v4/providers/dns/exec"
	"github.com/go-acme/lego/v4/providers/dns/httpreq"
)

// ChallengeMode is how an Issuer proves control of the names.
type ChallengeMode string

// Challenge modes.
const (
	// ChallengeAuto uses the webroot when nginx serves it and standalone
	// otherwise (first issuance, nginx down). DNS-01 is never automatic.
	ChallengeAuto ChallengeMode = "auto"
	// ChallengeStandalone answers HTTP-01 with lego's own HTTP server on
	// the HTTP port; nothing else may listen there.
	ChallengeStandalone ChallengeMode = "standalone"
	// ChallengeWebroot answers HTTP-01 by writing files into the webroot,
	// which nginx serves under /.well-known/acme-challenge/.
	ChallengeWebroot ChallengeMode = "webroot"
	// ChallengeDNS answers DNS-01 through a DNS provider (DNSProviders).
	ChallengeDNS ChallengeMode = "dns"
)

// ChallengeModes lists the modes ParseChallengeMode accepts.
var ChallengeModes = []ChallengeMode{ChallengeAuto, ChallengeStandalone, ChallengeWebroot, ChallengeDNS}

// ParseChallengeMode parses "auto", "standalone", "webroot" or "dns".
func ParseChallengeMode(s string) (ChallengeMode, error) {
	m := ChallengeMode(strings.ToLower(s))
	if m == "" {
		return ChallengeAuto, nil
	}
	if slices.Contains(ChallengeModes, m) {
		return m, nil
	}
	return "", fmt.Errorf("unknown challenge %q: use auto, standalone, webroot or dns", s)
}

// ChallengeConfig configures how names are validated.
type ChallengeConfig struct {
	Mode ChallengeMode // "" means ChallengeAuto
	// HTTPAddress is the address the standalone server binds ("" for all
	// interfaces); HTTPPort is its port, the port the CA connects to (80
	// unless a test CA is configured otherwise). 0 means 80.
	HTTPAddress string
	HTTPPort    int
	// Webroot is the directory nginx serves /.well-known/acme-challenge/
	// from (ROOT/acme-webroot).
	Webroot string
	// ProbeAddress is where auto mode looks for nginx serving the webroot;
	// "" means 127.0.0.1:HTTPPort.
	ProbeAddress string
	// DNSProvider names one of DNSProviders; it reads its settings from
	// environment variables.
	DNSProvider string
	// DNSResolvers are the resolvers (host:port) lego asks to check that a
	// DNS-01 record has propagated; when set, the zone's authoritative
	// servers are not asked. Empty means /etc/resolv.conf's resolvers and
	// then the authoritative servers.
	DNSResolvers []string
}

func (c ChallengeConfig) port() int {
	if c.HTTPPort == 0 {
		return 80
	}
	return c.HTTPPort
}

func (c ChallengeConfig) probeAddress() string {
	if c.ProbeAddress != "" {
		return c.ProbeAddress
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port()))
}

// DNSProviders are the DNS-01 providers built into regctl. Only these are
// imported: lego's registry of all providers would add dozens of cloud
// SDKs to the binary. Each reads lego's environment variables:
//
//	exec:    EXEC_PATH (program called as `PROGRAM present|cleanup FQDN VALUE`),
//	         EXEC_MODE=RAW (then `PROGRAM present|cleanup DOMAIN TOKEN KEYAUTH`),
//	         EXEC_PROPAGATION_TIMEOUT, EXEC_POLLING_INTERVAL
//	httpreq: HTTPREQ_ENDPOINT (POSTs /present and /cleanup with JSON {fqdn, value}),
//	         HTTPREQ_MODE, HTTPREQ_USERNAME, HTTPREQ_PASSWORD,
//	         HTTPREQ_PROPAGATION_TIMEOUT, HTTPREQ_POLLING_INTERVAL
//
// Any DNS service can be driven through exec with a small script, or
// through httpreq with a small web hook.
var DNSProviders = map[string]func() (challenge.Provider, error){
	"exec":    func() (challenge.Provider, error) { return dnsexec.NewDNSProvider() },
	"httpreq": func() (challenge.Provider, error) { return httpreq.NewDNSProvider() },
}

// DNSProviderNames returns the names of DNSProviders, sorted.
func DNSProviderNames() []string {
	var names []string
	for n := range DNSProviders {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// NewDNSProvider builds the named DNS-01 provider from its environment
// variables.
func NewDNSProvider(name string) (challenge.Provider, error) {
	build, ok := DNSProviders[name]
	if !ok {
		return nil, fmt.Errorf("unknown DNS provider %q: built-in providers are %s", name, strings.Join(DNSProviderNames(), ", "))
	}
	p, err := build()
	if err != nil {
		return nil, fmt.Errorf("DNS provider %s: %w", name, err)
	}
	return p, nil
}

// ResolveChallenge turns ChallengeAuto into webroot or standalone: webroot
// when the webroot directory exists and a web server at the probe address
// serves a file put into it (ProbeWebroot), standalone otherwise. Other
// modes are returned unchanged. The returned error explains a fallback
// (nil when none was needed).
func ResolveChallenge(ctx context.Context, c ChallengeConfig, host string) (ChallengeMode, error) {
	if c.Mode != "" && c.Mode != ChallengeAuto {
		return c.Mode, nil
	}
	if c.Webroot == "" {
		return ChallengeStandalone, errors.New("no webroot configured")
	}
	if err := ProbeWebroot(ctx, c.Webroot, c.probeAddress(), host); err != nil {
		return ChallengeStandalone, err
	}
	return ChallengeWebroot, nil
}

// ProbeWebroot checks that the web server at addr serves webroot under
// /.well-known/acme-challenge/: it writes a random file there, fetches it
// over HTTP with the Host header host, compares, and removes the file.
func ProbeWebroot(ctx context.Context, webroot, addr, host string) error {
	if fi, err := os.Stat(webroot); err != nil {
		return fmt.Errorf("webroot %s: %w", webroot, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("webroot %s is not a directory", webroot)
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := "regctl-probe-" + hex.EncodeToString(b[:])
	body := []byte(token + "\n")
	path := filepath.Join(webroot, http01.ChallengePath(token))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, body, 0o644); err != nil {
		return fmt.Errorf("write probe file: %w", err)
	}
	defer os.Remove(path)

	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	u := "http://" + addr + http01.ChallengePath(token)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", u, err)
	}
	if host != "" && !IsWildcard(host) {
		req.Host = host
	}
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		// A redirect (to https) means the webroot is not served over HTTP.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("no web server serving the webroot at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("probe %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(body)) {
		return fmt.Errorf("web server at %s does not serve %s under /.well-known/acme-challenge/ (HTTP %d)", addr, webroot, resp.StatusCode)
	}
	return nil
}
