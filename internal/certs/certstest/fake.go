package certstest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/certs"
)

// CA issues certificates without an ACME server.
type CA struct {
	t    testing.TB
	key  *ecdsa.PrivateKey
	Cert *x509.Certificate
}

// NewCA creates a CA whose certificate has the common name name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ski := make([]byte, 20)
	_, _ = rand.Read(ski)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-24 * time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{t: t, key: key, Cert: cert}
}

// Pool returns a pool holding the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue returns a bundle (leaf and CA certificate, PKCS#8 key) for names
// (DNS names or IP addresses), valid from notBefore to notAfter.
func (ca *CA) Issue(names []string, notBefore, notAfter time.Time) certs.Bundle {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	var chain bytes.Buffer
	_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
	return certs.Bundle{Fullchain: chain.Bytes(), PrivateKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}
}

// FakeIssuer is a certs.Issuer and certs.RenewalInfoer backed by a CA. Its
// certificates live Lifetime from Now(); Window, if set, gives the ARI
// window of a certificate (nil Window: the CA offers no ARI).
type FakeIssuer struct {
	CA        *CA
	Lifetime  time.Duration
	Now       func() time.Time
	Challenge certs.ChallengeMode

	mu sync.Mutex
	// Window returns the ARI window for a leaf.
	Window func(leaf *x509.Certificate) (*certs.RenewalWindow, error)
	// OnARI, if set, runs at the start of each RenewalInfo call.
	OnARI func()
	// Err, if set, fails Obtain and Renew.
	Err   error
	calls []string
}

var (
	_ certs.Issuer        = (*FakeIssuer)(nil)
	_ certs.RenewalInfoer = (*FakeIssuer)(nil)
)

// NewFakeIssuer returns a FakeIssuer with a CA named "Fake Test CA",
// 90-day certificates, the webroot challenge, and the clock now.
func NewFakeIssuer(t testing.TB, now func() time.Time) *FakeIssuer {
	return &FakeIssuer{CA: NewCA(t, "Fake Test CA"), Lifetime: 90 * 24 * time.Hour, Now: now, Challenge: certs.ChallengeWebroot}
}

// Set runs fn with the issuer's lock held, to change its fields safely.
func (f *FakeIssuer) Set(fn func(f *FakeIssuer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// Obtain implements certs.Issuer; it records "obtain NAMES profile=P".
func (f *FakeIssuer) Obtain(_ context.Context, req certs.Request) (*certs.Issued, error) {
	return f.issue("obtain "+strings.Join(req.Domains, ",")+" profile="+req.Profile, req, "")
}

// Renew implements certs.Issuer; it records "renew NAMES profile=P
// replaces=SERIAL" (the old serial in lower-case hex).
func (f *FakeIssuer) Renew(_ context.Context, old *x509.Certificate, req certs.Request) (*certs.Issued, error) {
	id := old.SerialNumber.Text(16)
	return f.issue("renew "+strings.Join(req.Domains, ",")+" profile="+req.Profile+" replaces="+id, req, id)
}

func (f *FakeIssuer) issue(call string, req certs.Request, replaces string) (*certs.Issued, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if f.Err != nil {
		return nil, f.Err
	}
	now := f.Now()
	return &certs.Issued{Bundle: f.CA.Issue(req.Domains, now, now.Add(f.Lifetime)), Challenge: f.Challenge, Replaces: replaces}, nil
}

// RenewalInfo implements certs.RenewalInfoer.
func (f *FakeIssuer) RenewalInfo(_ context.Context, leaf *x509.Certificate) (*certs.RenewalWindow, error) {
	f.mu.Lock()
	window, onARI := f.Window, f.OnARI
	f.mu.Unlock()
	if onARI != nil {
		onARI()
	}
	if window == nil {
		return nil, certs.ErrNoARI
	}
	return window(leaf)
}

// Calls returns the recorded Obtain and Renew calls.
func (f *FakeIssuer) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// RecordingReloader is a certs.Reloader that records "check" and "reload".
type RecordingReloader struct {
	mu       sync.Mutex
	calls    []string
	CheckErr error
}

// Check implements certs.Reloader.
func (r *RecordingReloader) Check(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "check")
	return r.CheckErr
}

// Reload implements certs.Reloader.
func (r *RecordingReloader) Reload(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "reload")
	return nil
}

// Calls returns the calls so far, comma-separated, and forgets them.
func (r *RecordingReloader) Calls() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.Join(r.calls, ",")
	r.calls = nil
	return s
}

// RecordingRunner is a certs.Runner that records commands and returns Err.
type RecordingRunner struct {
	mu   sync.Mutex
	cmds []certs.Command
	Err  error
}

// Run implements certs.Runner.
func (r *RecordingRunner) Run(_ context.Context, c certs.Command) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds = append(r.cmds, c)
	return nil, r.Err
}

// Commands returns the recorded commands.
func (r *RecordingRunner) Commands() []certs.Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]certs.Command(nil), r.cmds...)
}
