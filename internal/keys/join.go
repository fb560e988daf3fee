package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// A host that joins a deployment signs tokens with a key of its own, under
// a leaf certificate from the deployment's CA, so that the registries,
// which trust the CA, accept every host's tokens. The CA key stays on the
// host that generated it, and no signing key leaves its host:
//
//  1. the new host runs Request: a signing key (created once) and a
//     certificate signing request for it;
//  2. the CA's host runs Sign on the request and gets the leaf;
//  3. the new host runs Join with the leaf, the CA certificate and the
//     deployment's refresh secret (shared, so that a refresh token one
//     host issued works at every host behind the same name).
//
// The same three steps renew a joined host's leaf: Request reuses the key.

// CSRFile is where `regctl keys request` suggests to keep the request.
const CSRFile = "signing.csr"

// Request returns a PEM certificate signing request for dir's signing key,
// creating the key first (alg, 0600, dir 0700) if dir has none.
func Request(dir string, alg Algorithm) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create keys directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict keys directory: %w", err)
	}
	keyPath := filepath.Join(dir, SigningKeyFile)
	key, err := readKey(keyPath)
	if errors.Is(err, os.ErrNotExist) {
		if key, err = newKey(alg, false); err != nil {
			return nil, err
		}
		keyPEM, err := encodeKey(key)
		if err != nil {
			return nil, err
		}
		if err := writeFile(keyPath, keyPEM, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	kid, err := LibtrustKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "regctl token signer " + kid[:14]},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// Sign issues a signing leaf for the key in csrPEM with the CA in dir
// (ca.key and ca.crt, as Generate wrote them), valid from now, and returns
// it in PEM. The request's subject and extensions are not copied: the
// leaf is the one Generate and Rotate issue, for the request's key.
func Sign(dir string, csrPEM []byte, now time.Time) ([]byte, error) {
	block, err := readSinglePEM("certificate request", csrPEM, "CERTIFICATE REQUEST")
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := checkSigningKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	caKeyPath, caCrtPath := filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile)
	caKey, err := readKey(caKeyPath)
	if err != nil {
		return nil, fmt.Errorf("%w (sign on the host whose keys directory has the CA key)", err)
	}
	ca, err := readCert(caCrtPath)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(caKey.Public(), ca.PublicKey) {
		return nil, fmt.Errorf("%s does not match the key in %s", caCrtPath, caKeyPath)
	}
	if !now.Before(ca.NotAfter) {
		return nil, fmt.Errorf("the CA in %s expired on %s", caCrtPath, ca.NotAfter.UTC().Format(time.RFC3339))
	}
	der, err := issueLeaf(ca, caKey, csr.PublicKey, now)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// Join completes dir, made by Request, with the leaf Sign issued for its
// key, the deployment's CA certificate and its refresh secret (refresh.key
// as Generate wrote it), after checking that the leaf is for dir's key
// and chains to the CA at now. It writes signing.crt, ca.crt, bundle.pem,
// jwks.json and refresh.key, and loads the result as regctl serve will.
func Join(dir string, leafPEM, caPEM, refreshPEM []byte, now time.Time) error {
	key, err := readKey(filepath.Join(dir, SigningKeyFile))
	if err != nil {
		return fmt.Errorf("%w (run regctl keys request first)", err)
	}
	leaf, err := parseCert("signing certificate", leafPEM)
	if err != nil {
		return err
	}
	ca, err := parseCert("CA certificate", caPEM)
	if err != nil {
		return err
	}
	if !publicKeysEqual(key.Public(), leaf.PublicKey) {
		return fmt.Errorf("the signing certificate is not for the key in %s: was it issued for this host's request?", filepath.Join(dir, SigningKeyFile))
	}
	// A certificate in the root pool verifies by itself: without this, the
	// leaf given as the CA would pass.
	if !ca.IsCA || !ca.BasicConstraintsValid {
		return errors.New("the CA certificate is not a CA: give the ca.crt of the CA's host's keys directory")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now}); err != nil {
		return fmt.Errorf("the signing certificate does not verify against the CA certificate: %w", err)
	}
	if _, err := parseSecret("refresh key", refreshPEM); err != nil {
		return err
	}
	jwks, err := JWKS([]crypto.PublicKey{key.Public()})
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{RefreshKeyFile, refreshPEM, 0o600},
		{CACertFile, caPEM, 0o644},
		{BundleFile, caPEM, 0o644},
		{JWKSFile, jwks, 0o644},
		{SigningCrtFile, leafPEM, 0o644}, // last: with it, the directory loads
	} {
		if err := writeFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	_, err = Load(dir, now)
	return err
}

// checkSigningKey accepts what Load accepts: ECDSA P-256 or RSA of at
// least 2048 bits.
func checkSigningKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return errors.New("only P-256 ECDSA keys are supported")
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return errors.New("RSA keys must have at least 2048 bits")
		}
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}
