package certstest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/testenv"
)

// PebbleVersion is the Pebble release the tests are written against.
const PebbleVersion = "v2.10.3"

// Profile is a Pebble certificate profile.
type Profile struct {
	Description    string `json:"description"`
	ValidityPeriod int64  `json:"validityPeriod"` // seconds
}

// Profile names the tests use. Pebble picks a random profile for an order
// that names none, so tests always name one.
const (
	ProfileClassic    = "classic"
	ProfileShortlived = "shortlived"
)

// ShortlivedValidity is the lifetime of Pebble's "shortlived" certificates
// in these tests: 45 hours. Pebble's ARI window is then
// [issued+6h, issued+45h] (2/3 of the lifetime ± 24h, clamped to the
// validity), so a renew run with the default 12h interval finds it due,
// one with a 1h interval does not, and the lifetime rule (a third left,
// at issued+30h) never fires first.
const ShortlivedValidity = 45 * time.Hour

// DefaultProfiles are the profiles StartPebble configures unless told
// otherwise: classic (90 days) and shortlived (ShortlivedValidity).
func DefaultProfiles() map[string]Profile {
	return map[string]Profile{
		ProfileClassic:    {Description: "90-day certificates", ValidityPeriod: int64(90 * 24 * time.Hour / time.Second)},
		ProfileShortlived: {Description: "short-lived certificates", ValidityPeriod: int64(ShortlivedValidity / time.Second)},
	}
}

// PebbleOptions configure StartPebble.
type PebbleOptions struct {
	// HTTPPort is the port Pebble's validation authority connects to for
	// HTTP-01 (on "localhost", which /etc/hosts maps to 127.0.0.1).
	// Required.
	HTTPPort int
	// Profiles replaces DefaultProfiles.
	Profiles map[string]Profile
	// DNSServer, if set, is the host:port Pebble resolves names with.
	DNSServer string
}

// Pebble is a running Pebble ACME server on 127.0.0.1.
type Pebble struct {
	// Directory is the ACME directory URL, https://127.0.0.1:PORT/dir.
	Directory string
	// Management is the management API's base URL.
	Management string
	// APIRootsFile is the PEM file of the CA that signed the API's TLS
	// certificate; APIRoots holds it.
	APIRootsFile string
	APIRoots     *x509.CertPool
	HTTPPort     int
	proc         *testenv.Proc
}

// StartPebble starts Pebble (REGCTL_TEST_PEBBLE; the test is skipped if it
// is unset) listening on free 127.0.0.1 ports, with validation sleeps off,
// no rejected nonces and no reused authorizations (every order is
// validated), and waits until its directory answers. The API's TLS
// certificate is Pebble's own test certificate from the Go module cache
// (test/certs/localhost, signed by pebble.minica.pem), or a throwaway
// one when the module cache lacks it.
func StartPebble(t testing.TB, o PebbleOptions) *Pebble {
	t.Helper()
	bin := PebbleBinary(t)
	if o.HTTPPort == 0 {
		t.Fatal("StartPebble: HTTPPort is required")
	}
	dir := t.TempDir()
	certFile, keyFile, rootsFile := pebbleAPICert(t, dir)
	profiles := o.Profiles
	if profiles == nil {
		profiles = DefaultProfiles()
	}
	apiPort, mgmtPort, tlsPort := FreePort(t), FreePort(t), FreePort(t)
	confPath := WritePebbleConfig(t, dir, PebbleConfig{
		ListenAddress:     "127.0.0.1:" + strconv.Itoa(apiPort),
		ManagementAddress: "127.0.0.1:" + strconv.Itoa(mgmtPort),
		Certificate:       certFile,
		PrivateKey:        keyFile,
		HTTPPort:          o.HTTPPort,
		TLSPort:           tlsPort,
		Profiles:          profiles,
	})
	args := []string{"-config", confPath}
	if o.DNSServer != "" {
		args = append(args, "-dnsserver", o.DNSServer)
	}
	env := PebbleEnv()
	p := &Pebble{
		Directory:    fmt.Sprintf("https://127.0.0.1:%d/dir", apiPort),
		Management:   fmt.Sprintf("https://127.0.0.1:%d", mgmtPort),
		APIRootsFile: rootsFile,
		HTTPPort:     o.HTTPPort,
		proc:         testenv.Start(t, "pebble", env, bin, args...),
	}
	pem, err := os.ReadFile(rootsFile)
	if err != nil {
		t.Fatal(err)
	}
	p.APIRoots = x509.NewCertPool()
	p.APIRoots.AppendCertsFromPEM(pem)

	p.proc.WaitReady(t, 30*time.Second, func() error {
		_, err := p.get(p.Directory)
		return err
	})
	return p
}

// PebbleConfig is what a Pebble configuration file sets apart from the
// settings every test shares.
type PebbleConfig struct {
	ListenAddress     string // the ACME API's host:port
	ManagementAddress string // the management API's host:port
	// Certificate and PrivateKey are the API's TLS certificate and key
	// files.
	Certificate, PrivateKey string
	// HTTPPort and TLSPort are where the validation authority connects
	// for HTTP-01 and TLS-ALPN-01.
	HTTPPort, TLSPort int
	Profiles          map[string]Profile
}

// WritePebbleConfig writes c as dir/pebble-config.json, with what every
// test shares: no OCSP, no external account binding, Retry-After 1 s and
// ECDSA keys. It returns the file's path.
func WritePebbleConfig(t testing.TB, dir string, c PebbleConfig) string {
	t.Helper()
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":                  c.ListenAddress,
		"managementListenAddress":        c.ManagementAddress,
		"certificate":                    c.Certificate,
		"privateKey":                     c.PrivateKey,
		"httpPort":                       c.HTTPPort,
		"tlsPort":                        c.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles":                       c.Profiles,
	}}
	data, _ := json.MarshalIndent(conf, "", "  ")
	path := filepath.Join(dir, "pebble-config.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// PebbleEnv is the environment the tests run Pebble with: validation
// sleeps off, no rejected nonces and no reused authorizations (every
// order is validated).
func PebbleEnv() []string {
	return []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}
}

// pebbleAPICert returns the API's certificate, key and root files.
func pebbleAPICert(t testing.TB, dir string) (cert, key, roots string) {
	t.Helper()
	certs := filepath.Join(modCache(), "github.com", "letsencrypt", "pebble", "v2@"+PebbleVersion, "test", "certs")
	cert = filepath.Join(certs, "localhost", "cert.pem")
	key = filepath.Join(certs, "localhost", "key.pem")
	roots = filepath.Join(certs, "pebble.minica.pem")
	if _, err := os.Stat(cert); err == nil {
		return cert, key, roots
	}
	t.Logf("%s not in the module cache; using a throwaway certificate for Pebble's API", cert)
	ca := NewCA(t, "Pebble API test CA")
	b := ca.Issue([]string{"localhost", "127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	cert, key, roots = filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key"), filepath.Join(dir, "api-root.pem")
	for path, data := range map[string][]byte{
		cert:  b.Fullchain,
		key:   b.PrivateKey,
		roots: pemCert(ca.Cert),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key, roots
}

func modCache() string {
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	return filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "pkg", "mod")
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// client trusts the API's roots.
func (p *Pebble) client() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: p.APIRoots}},
	}
}

func (p *Pebble) get(url string) ([]byte, error) {
	resp, err := p.client().Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body, nil
}

// IssuingRoots returns the roots Pebble issues under (from the management
// API's /roots/0), for clients that verify issued certificates.
func (p *Pebble) IssuingRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	body, err := p.get(p.Management + "/roots/0")
	if err != nil {
		t.Fatalf("fetch Pebble's issuing root: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(body) {
		t.Fatalf("Pebble's /roots/0 is not PEM: %q", body)
	}
	return pool
}

// Log returns Pebble's output so far.
func (p *Pebble) Log() string { return p.proc.Log(0) }

// SetARI makes Pebble answer ARI queries for the certificate (PEM) with
// the given window (management API /set-renewal-info/).
func (p *Pebble) SetARI(t testing.TB, certPEM []byte, start, end time.Time) {
	t.Helper()
	ari, _ := json.Marshal(map[string]any{"suggestedWindow": map[string]string{
		"start": start.UTC().Format(time.RFC3339), "end": end.UTC().Format(time.RFC3339),
	}})
	body, _ := json.Marshal(map[string]string{"Certificate": string(certPEM), "ARIResponse": string(ari)})
	resp, err := p.client().Post(p.Management+"/set-renewal-info/", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("set ARI: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("set ARI: %s: %s", resp.Status, msg)
	}
}
