// Package keys creates and loads the token-signing material: a small local
// CA, a signing leaf issued by it, the bundle the registry trusts, and the
// JWKS document. The registry trusts the CA (rootcertbundle), and every token
// carries the leaf and CA in its x5c header, so the leaf can rotate without
// touching the registry's configuration.
package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/renameio/v2"
)

// File names inside a keys directory.
const (
	CAKeyFile      = "ca.key"      // CA private key (0600); only `keys generate`/`rotate` read it
	CACertFile     = "ca.crt"      // CA certificate
	SigningKeyFile = "signing.key" // token-signing private key (0600)
	SigningCrtFile = "signing.crt" // signing leaf certificate, issued by the CA
	BundleFile     = "bundle.pem"  // what the registry's auth.token.rootcertbundle points to
	JWKSFile       = "jwks.json"   // what distribution v3's auth.token.jwks may point to
	RefreshKeyFile = "refresh.key" // HMAC secret for refresh tokens (0600)
)

// Algorithm names a token-signing algorithm.
type Algorithm string

// The token-signing algorithms regctl supports.
const (
	ES256 Algorithm = "es256" // ECDSA P-256, the default
	RS256 Algorithm = "rs256" // RSA 2048 (CA: RSA 3072)
)

// ParseAlgorithm accepts es256 or rs256, in any case.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch a := Algorithm(strings.ToLower(s)); a {
	case ES256, RS256:
		return a, nil
	}
	return "", fmt.Errorf("unknown signing algorithm %q (want es256 or rs256)", s)
}

// Validity of generated certificates.
const (
	CAValidity      = 10 * 365 * 24 * time.Hour
	SigningValidity = 365 * 24 * time.Hour
)

// Set is loaded signing material.
type Set struct {
	Signer    crypto.Signer
	Algorithm jose.SignatureAlgorithm
	// Chain is the signing leaf followed by the CA.
	Chain []*x509.Certificate
	// KeyID is the libtrust key ID of the signing key, sent as "kid".
	KeyID string
	// RefreshKey is the HMAC secret for refresh tokens.
	RefreshKey []byte
	// Previous holds the certificate of the signing key Rotate replaced
	// (signing.prev.crt), if any: still listed in the JWKS, because
	// tokens it signed stay valid until they expire.
	Previous []*x509.Certificate
}

// NotAfter is when the signing certificate, and so every token, stops
// being accepted by the registry.
func (s *Set) NotAfter() time.Time { return s.Chain[0].NotAfter }

// Generate writes a fresh CA, signing leaf, bundle, JWKS and refresh secret
// into dir (created 0700). It refuses to overwrite existing keys.
func Generate(dir string, alg Algorithm, now time.Time) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create keys directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict keys directory: %w", err)
	}
	for _, f := range []string{CAKeyFile, SigningKeyFile} {
		p := filepath.Join(dir, f)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists: keys are generated once; remove the directory to start over", p)
		}
	}
	caKey, err := newKey(alg, true)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "regctl token CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := createCert(caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	leafKey, err := newKey(alg, false)
	if err != nil {
		return err
	}
	leafDER, err := issueLeaf(ca, caKey, leafKey.Public(), now)
	if err != nil {
		return err
	}
	refresh, err := newRefreshKey()
	if err != nil {
		return err
	}
	caKeyPEM, err := encodeKey(caKey)
	if err != nil {
		return err
	}
	leafKeyPEM, err := encodeKey(leafKey)
	if err != nil {
		return err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	jwks, err := JWKS([]crypto.PublicKey{leafKey.Public()})
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode fs.FileMode
	}{
		{CAKeyFile, caKeyPEM, 0o600},
		{SigningKeyFile, leafKeyPEM, 0o600},
		{RefreshKeyFile, refresh, 0o600},
		{CACertFile, caPEM, 0o644},
		{SigningCrtFile, leafPEM, 0o644},
		{BundleFile, caPEM, 0o644},
		{JWKSFile, jwks, 0o644},
	}
	for _, f := range files {
		if err := renameio.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	return nil
}

func newKey(alg Algorithm, ca bool) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		bits := 2048
		if ca {
			bits = 3072
		}
		return rsa.GenerateKey(rand.Reader, bits)
	}
	return nil, fmt.Errorf("unknown signing algorithm %q", alg)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func createCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, error) {
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = sn
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return der, nil
}

// issueLeaf creates a signing certificate for pub. It carries no extended
// key usage: distribution verifies the x5c chain with Go's default
// (server auth), which a certificate without EKU satisfies.
func issueLeaf(ca *x509.Certificate, caKey crypto.Signer, pub crypto.PublicKey, now time.Time) ([]byte, error) {
	kid, err := LibtrustKeyID(pub)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(SigningValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter // a leaf cannot outlive its CA
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "regctl token signer " + kid[:14]},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	return createCert(tmpl, ca, pub, caKey)
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// LibtrustKeyID is the key ID distribution 2.8 (libtrust) computes: SHA-256
// of the DER SubjectPublicKeyInfo, truncated to 240 bits, base32 without
// padding, in 12 groups of 4 joined by ':'.
func LibtrustKeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	s := base32.StdEncoding.EncodeToString(sum[:30]) // 240 bits → 48 chars, no padding
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(s[i : i+4])
	}
	return b.String(), nil
}

// JWKS renders public keys as a JSON Web Key Set; each key's kid is its
// libtrust key ID, the same value tokens carry.
func JWKS(pubs []crypto.PublicKey) ([]byte, error) {
	var set jose.JSONWebKeySet
	for _, pub := range pubs {
		kid, err := LibtrustKeyID(pub)
		if err != nil {
			return nil, err
		}
		alg := string(jose.ES256)
		if _, ok := pub.(*rsa.PublicKey); ok {
			alg = string(jose.RS256)
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"})
	}
	b, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Load reads the signing material from dir and checks it: private keys
// readable by their owner only, the leaf matching its key and chaining to
// the CA, and the leaf valid at now.
func Load(dir string, now time.Time) (*Set, error) {
	key, err := readKey(filepath.Join(dir, SigningKeyFile))
	if err != nil {
		return nil, err
	}
	leaf, err := readCert(filepath.Join(dir, SigningCrtFile))
	if err != nil {
		return nil, err
	}
	ca, err := readCert(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(key.Public(), leaf.PublicKey) {
		return nil, fmt.Errorf("%s does not match the key in %s", filepath.Join(dir, SigningCrtFile), filepath.Join(dir, SigningKeyFile))
	}
	if !ca.IsCA || !ca.BasicConstraintsValid {
		return nil, fmt.Errorf("%s is not a CA certificate", filepath.Join(dir, CACertFile))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now}); err != nil {
		return nil, fmt.Errorf("%s does not verify against %s: %w", filepath.Join(dir, SigningCrtFile), filepath.Join(dir, CACertFile), err)
	}
	refresh, err := readSecret(filepath.Join(dir, RefreshKeyFile))
	if err != nil {
		return nil, err
	}
	kid, err := LibtrustKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	prev, err := loadPrevious(dir)
	if err != nil {
		return nil, err
	}
	s := &Set{Signer: key, Chain: []*x509.Certificate{leaf, ca}, KeyID: kid, RefreshKey: refresh, Previous: prev}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%s: only P-256 ECDSA keys are supported", filepath.Join(dir, SigningKeyFile))
		}
		s.Algorithm = jose.ES256
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%s: RSA keys must have at least 2048 bits", filepath.Join(dir, SigningKeyFile))
		}
		s.Algorithm = jose.RS256
	default:
		return nil, fmt.Errorf("%s: unrecognized key type %T", filepath.Join(dir, SigningKeyFile), key)
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ae.Equal(b)
}

// readPrivate reads a secret file, refusing one that group or others can read.
func readPrivate(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &missingKeyError{path: path}
		}
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, &ModeError{Path: path, Mode: fi.Mode().Perm()}
	}
	return os.ReadFile(path)
}

// ModeError is a private key file that group or others may read.
type ModeError struct {
	Path string
	Mode fs.FileMode
}

func (e *ModeError) Error() string {
	return fmt.Sprintf("%s has mode %04o; private keys must be readable by their owner only (chmod 600 %s)", e.Path, e.Mode, e.Path)
}

// missingKeyError is a private key file that does not exist; it matches
// fs.ErrNotExist.
type missingKeyError struct{ path string }

func (e *missingKeyError) Error() string {
	return fmt.Sprintf("no key at %s; run `regctl keys generate --dir %s`", e.path, filepath.Dir(e.path))
}

func (e *missingKeyError) Is(target error) bool { return target == fs.ErrNotExist }

func readSinglePEM(path string, data []byte, wantType string) (*pem.Block, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block found", path)
	}
	if wantType != "" && block.Type != wantType {
		return nil, fmt.Errorf("%s: PEM block is %q, want %q", path, block.Type, wantType)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%s: unexpected data after the first PEM block", path)
	}
	return block, nil
}

func readKey(path string) (crypto.Signer, error) {
	data, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	block, err := readSinglePEM(path, data, "")
	if err != nil {
		return nil, err
	}
	s, err := ParsePrivateKey(block)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ParsePrivateKey parses a PEM private key block: PKCS #8 ("PRIVATE
// KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS #1 ("RSA PRIVATE KEY").
func ParsePrivateKey(block *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unrecognized key type %T", k)
	}
	return s, nil
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	return parseCert(path, data)
}

// parseCert parses data, one PEM certificate; what names it in errors.
func parseCert(what string, data []byte) (*x509.Certificate, error) {
	block, err := readSinglePEM(what, data, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return c, nil
}

func readSecret(path string) ([]byte, error) {
	data, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	return parseSecret(path, data)
}

// parseSecret parses a refresh.key; what names it in errors.
func parseSecret(what string, data []byte) ([]byte, error) {
	block, err := readSinglePEM(what, data, "REGCTL REFRESH KEY")
	if err != nil {
		return nil, err
	}
	if len(block.Bytes) < 32 {
		return nil, fmt.Errorf("%s: secret is shorter than 32 bytes", what)
	}
	return block.Bytes, nil
}
