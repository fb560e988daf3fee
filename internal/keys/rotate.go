package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/regctl/regctl/internal/atomicfile"
)

// Files of the previous signing key, kept by Rotate so that the JWKS lists
// it during the overlap (tokens it signed stay valid until they expire).
const (
	PrevSigningKeyFile = "signing.prev.key" // 0600
	PrevSigningCrtFile = "signing.prev.crt" // 0644
)

// ExpiryWarning is how long before the signing certificate expires `regctl
// doctor` and `regctl serve` start warning: an expired signing certificate
// silently invalidates every token.
const ExpiryWarning = 30 * 24 * time.Hour

// Rotation is what Rotate did.
type Rotation struct {
	Algorithm Algorithm
	OldKeyID  string
	NewKeyID  string
	// NotAfter is when the new signing certificate expires.
	NotAfter time.Time
}

// Rotate issues a new signing key and certificate from the CA in dir (made
// by Generate). The current pair is kept as signing.prev.{key,crt} (replacing
// an older one) and jwks.json lists the new key and the previous one. ca.crt
// and bundle.pem do not change, so the registry needs no change and no
// restart: it trusts the CA, and every token carries its own x5c chain.
// `regctl serve` picks the new key up by itself (see token.KeyReloader).
//
// The new key has the current key's type. The current certificate may have
// expired (rotating is the fix), but it must match its key and be issued by
// the CA. Files are replaced one by one, atomically; the new certificate
// is written last.
func Rotate(dir string, now time.Time) (*Rotation, error) {
	caKeyPath, caCrtPath := filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile)
	keyPath, crtPath := filepath.Join(dir, SigningKeyFile), filepath.Join(dir, SigningCrtFile)
	caKey, err := readKey(caKeyPath)
	if err != nil {
		return nil, err
	}
	ca, err := readCert(caCrtPath)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(caKey.Public(), ca.PublicKey) {
		return nil, fmt.Errorf("%s does not match the key in %s", caCrtPath, caKeyPath)
	}
	if !ca.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", caCrtPath)
	}
	if !now.Before(ca.NotAfter) {
		return nil, fmt.Errorf("the CA in %s expired on %s: a new CA changes the registry's trust bundle; generate new keys in an empty directory (regctl keys generate) and point the registry's rootcertbundle at its bundle.pem",
			caCrtPath, ca.NotAfter.UTC().Format(time.RFC3339))
	}

	oldKeyPEM, err := readPrivate(keyPath)
	if err != nil {
		return nil, err
	}
	oldKey, err := readKey(keyPath)
	if err != nil {
		return nil, err
	}
	oldCrtPEM, err := os.ReadFile(crtPath)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	oldCrt, err := readCert(crtPath)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(oldKey.Public(), oldCrt.PublicKey) {
		return nil, fmt.Errorf("%s does not match the key in %s", crtPath, keyPath)
	}
	if err := oldCrt.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("%s was not issued by the CA in %s: %w", crtPath, caCrtPath, err)
	}

	var alg Algorithm
	switch oldKey.(type) {
	case *ecdsa.PrivateKey:
		alg = ES256
	case *rsa.PrivateKey:
		alg = RS256
	default:
		return nil, fmt.Errorf("%s: unrecognized key type %T", keyPath, oldKey)
	}
	newKey, err := newKey(alg, false)
	if err != nil {
		return nil, err
	}
	leafDER, err := issueLeaf(ca, caKey, newKey.Public(), now)
	if err != nil {
		return nil, err
	}
	newKeyPEM, err := encodeKey(newKey)
	if err != nil {
		return nil, err
	}
	jwks, err := JWKS([]crypto.PublicKey{newKey.Public(), oldKey.Public()})
	if err != nil {
		return nil, err
	}
	oldKID, err := LibtrustKeyID(oldKey.Public())
	if err != nil {
		return nil, err
	}
	newKID, err := LibtrustKeyID(newKey.Public())
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, err
	}

	// The previous pair first, so that it is never lost; the new key before
	// its certificate: a `regctl serve` that looks in between finds them
	// mismatched, keeps its current key and looks again later.
	files := []struct {
		name string
		data []byte
		mode fs.FileMode
	}{
		{PrevSigningKeyFile, oldKeyPEM, 0o600},
		{PrevSigningCrtFile, oldCrtPEM, 0o644},
		{JWKSFile, jwks, 0o644},
		{SigningKeyFile, newKeyPEM, 0o600},
		{SigningCrtFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o644},
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return &Rotation{Algorithm: alg, OldKeyID: oldKID, NewKeyID: newKID, NotAfter: leaf.NotAfter}, nil
}

// RotateRefreshKey replaces refresh.key in dir (made by Generate) with a
// new random secret. Every refresh token signed with the old one stops
// working once regctl serve reloads the directory: docker login's stored
// identity tokens are revoked at once, and their users log in again.
func RotateRefreshKey(dir string) error {
	path := filepath.Join(dir, RefreshKeyFile)
	if _, err := readSecret(path); err != nil {
		return fmt.Errorf("%w (is %s a directory made by regctl keys generate?)", err, dir)
	}
	data, err := newRefreshKey()
	if err != nil {
		return err
	}
	return writeFile(path, data, 0o600)
}

// newRefreshKey returns a new refresh.key: 32 random bytes in PEM.
func newRefreshKey() ([]byte, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "REGCTL REFRESH KEY", Bytes: secret}), nil
}

// writeFile replaces path atomically with exactly mode.
func writeFile(path string, data []byte, mode fs.FileMode) error {
	if err := atomicfile.Write(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// loadPrevious reads signing.prev.crt if it exists.
func loadPrevious(dir string) ([]*x509.Certificate, error) {
	p := filepath.Join(dir, PrevSigningCrtFile)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	c, err := readCert(p)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{c}, nil
}

// PublicKeys are the current signing key followed by the previous ones
// whose certificates have not expired at now.
func (s *Set) PublicKeys(now time.Time) []crypto.PublicKey {
	out := []crypto.PublicKey{s.Signer.Public()}
	for _, c := range s.Previous {
		if now.Before(c.NotAfter) && !publicKeysEqual(s.Signer.Public(), c.PublicKey) {
			out = append(out, c.PublicKey)
		}
	}
	return out
}

// JWKS is the key set `regctl serve` publishes: PublicKeys as JWKS.
func (s *Set) JWKS(now time.Time) ([]byte, error) { return JWKS(s.PublicKeys(now)) }

// ExpiresSoon reports whether less than ExpiryWarning remains of the
// signing certificate at now (or it has expired).
func (s *Set) ExpiresSoon(now time.Time) bool { return s.NotAfter().Sub(now) < ExpiryWarning }

// Stamp summarises the identity (inode, size, modification time) of the
// files Load reads, so that a caller polling dir can tell that they changed
// without reading them. Rotate replaces files by rename, which always
// changes the inode.
func Stamp(dir string) string {
	var b strings.Builder
	for _, name := range []string{SigningKeyFile, SigningCrtFile, CACertFile, RefreshKeyFile, PrevSigningCrtFile} {
		b.WriteString(name)
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			b.WriteString(":-;")
			continue
		}
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		fmt.Fprintf(&b, ":%d:%d:%d;", ino, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

// ReadCertificates reads every certificate of a PEM bundle (bundle.pem, the
// registry's rootcertbundle). Anything but CERTIFICATE blocks is an error
// naming the file.
func ReadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: PEM block is %q, want \"CERTIFICATE\"", path, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%s: unexpected data after the last PEM block", path)
	}
	return out, nil
}

// ReadCertificate reads a file holding exactly one PEM certificate.
func ReadCertificate(path string) (*x509.Certificate, error) { return readCert(path) }
