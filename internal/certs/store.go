package certs

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/regctl/regctl/internal/keys"
)

// RenewalWindow is a CA's suggested renewal window (ACME Renewal
// Information, RFC 9773) as regctl records it.
type RenewalWindow struct {
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	ExplanationURL string    `json:"explanation_url,omitempty"`
	// FetchedAt is when the window was fetched; RetryAfter is how long the
	// CA asked clients to wait before asking again.
	FetchedAt  time.Time     `json:"fetched_at"`
	RetryAfter time.Duration `json:"retry_after,omitempty"`
}

// Valid reports whether w is a usable window: non-nil with Start before
// End (RFC 9773 calls any other window invalid).
func (w *RenewalWindow) Valid() bool {
	return w != nil && !w.Start.IsZero() && w.Start.Before(w.End)
}

// Meta is what regctl records next to a certificate, in meta.json.
type Meta struct {
	Domains   []string `json:"domains"`
	Directory string   `json:"directory"` // ACME directory URL it came from
	// Staging is true when the certificate came from a staging (test) CA:
	// Let's Encrypt staging, a directory given together with --staging, or
	// an issuer whose name says so.
	Staging    bool      `json:"staging"`
	Profile    string    `json:"profile,omitempty"`
	Issuer     string    `json:"issuer"`
	Serial     string    `json:"serial"` // upper-case hex, as openssl prints it
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	CertURL    string    `json:"cert_url,omitempty"`
	Challenge  string    `json:"challenge,omitempty"`
	ObtainedAt time.Time `json:"obtained_at"`
	// Replaces is the ARI certificate ID of the certificate this one
	// replaced (the order's "replaces" field), if any.
	Replaces string `json:"replaces,omitempty"`
	// ARI is the last renewal window the CA suggested for this certificate.
	ARI *RenewalWindow `json:"ari,omitempty"`
}

// Cert is a certificate as stored on disk.
type Cert struct {
	Name  string
	Dir   string
	Leaf  *x509.Certificate
	Chain []*x509.Certificate // the whole fullchain.pem, leaf first
	// Meta is meta.json; HasMeta is false when the file is missing (a
	// certificate put there by hand), and Meta then holds what the leaf
	// says.
	Meta    Meta
	HasMeta bool
}

// Staging reports whether the certificate came from a staging CA,
// according to meta.json or, failing that, its issuer's name.
func (c *Cert) Staging() bool {
	return c.Meta.Staging || IssuerLooksStaging(c.Leaf)
}

// Bundle is what an issuer returns: PEM certificate chain (leaf first) and
// PEM private key.
type Bundle struct {
	Fullchain  []byte
	PrivateKey []byte
}

// Store keeps certificates under Dir (ROOT/certs/live), one directory per
// certificate name.
//
// Contract: Load returns an error wrapping fs.ErrNotExist when a name has
// no certificate. Save checks that the key matches the leaf, then writes
// privkey.pem, fullchain.pem and meta.json, each atomically (temporary
// file, fsync, rename) with mode 0600, in a directory of mode 0700.
// nginx reads the files only when reloaded, which happens after Save
// returns. Store does no locking: writers hold the Manager's file lock.
type Store struct{ Dir string }

// List returns the names of the stored certificates, sorted. A missing
// Dir is an empty store.
func (s Store) List() ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list certificates in %s: %w", s.Dir, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if _, err := os.Stat(filepath.Join(s.Dir, e.Name(), FullchainFile)); err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Load reads the certificate called name.
func (s Store) Load(name string) (*Cert, error) {
	if err := checkCertName(name); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Dir, name)
	path := filepath.Join(dir, FullchainFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate %s: %w", path, err)
	}
	chain, err := ParseChain(data)
	if err != nil {
		return nil, fmt.Errorf("read certificate %s: %w", path, err)
	}
	c := &Cert{Name: name, Dir: dir, Leaf: chain[0], Chain: chain}
	metaPath := filepath.Join(dir, MetaFile)
	switch raw, err := os.ReadFile(metaPath); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", metaPath, err)
	default:
		if err := json.Unmarshal(raw, &c.Meta); err != nil {
			return nil, fmt.Errorf("parse %s: %w", metaPath, err)
		}
		c.HasMeta = true
	}
	fillFromLeaf(&c.Meta, c.Leaf)
	return c, nil
}

// Save stores b as the certificate called name with meta; the fields that
// the leaf determines (domains, issuer, serial, validity) are filled in
// from the leaf.
func (s Store) Save(name string, b Bundle, meta Meta) (*Cert, error) {
	if err := checkCertName(name); err != nil {
		return nil, err
	}
	chain, err := ParseChain(b.Fullchain)
	if err != nil {
		return nil, fmt.Errorf("save certificate %s: %w", name, err)
	}
	key, err := ParsePrivateKey(b.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("save certificate %s: %w", name, err)
	}
	if !publicKeysEqual(key.Public(), chain[0].PublicKey) {
		return nil, fmt.Errorf("save certificate %s: private key does not match the certificate", name)
	}
	dir := filepath.Join(s.Dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	meta.Domains = nil
	fillFromLeaf(&meta, chain[0])
	if err := writeFile(filepath.Join(dir, PrivkeyFile), b.PrivateKey, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, FullchainFile), b.Fullchain, 0o600); err != nil {
		return nil, err
	}
	if err := s.SaveMeta(name, meta); err != nil {
		return nil, err
	}
	return &Cert{Name: name, Dir: dir, Leaf: chain[0], Chain: chain, Meta: meta, HasMeta: true}, nil
}

// SaveMeta replaces the meta.json of the certificate called name.
func (s Store) SaveMeta(name string, meta Meta) error {
	if err := checkCertName(name); err != nil {
		return err
	}
	data, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fmt.Errorf("encode metadata of %s: %w", name, err)
	}
	return writeFile(filepath.Join(s.Dir, name, MetaFile), append(data, '\n'), 0o600)
}

// fillFromLeaf sets the fields of m that the certificate determines.
func fillFromLeaf(m *Meta, leaf *x509.Certificate) {
	if len(m.Domains) == 0 {
		m.Domains = LeafNames(leaf)
	}
	m.Issuer = IssuerName(leaf)
	m.Serial = fmt.Sprintf("%X", leaf.SerialNumber)
	m.NotBefore = leaf.NotBefore.UTC()
	m.NotAfter = leaf.NotAfter.UTC()
	if IssuerLooksStaging(leaf) {
		m.Staging = true
	}
}

// LeafNames returns the DNS names and IP addresses a certificate covers.
func LeafNames(leaf *x509.Certificate) []string {
	names := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = []string{leaf.Subject.CommonName}
	}
	return names
}

// IssuerName is a short name for a certificate's issuer: its common name,
// else its organization, else the full distinguished name.
func IssuerName(leaf *x509.Certificate) string {
	switch {
	case leaf.Issuer.CommonName != "":
		return leaf.Issuer.CommonName
	case len(leaf.Issuer.Organization) > 0:
		return leaf.Issuer.Organization[0]
	}
	return leaf.Issuer.String()
}

// IssuerLooksStaging reports whether a certificate's issuer is a staging
// CA by its name: Let's Encrypt's staging intermediates are called
// "(STAGING) ..." (formerly "Fake LE ...").
func IssuerLooksStaging(leaf *x509.Certificate) bool {
	if leaf == nil {
		return false
	}
	s := strings.ToUpper(leaf.Issuer.String())
	return strings.Contains(s, "(STAGING)") || strings.Contains(s, "FAKE LE")
}

// ParseChain parses PEM certificates, leaf first. Other PEM blocks are an
// error, and so is a first certificate that is a CA.
func ParseChain(data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("trailing data after the PEM certificates")
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		chain = append(chain, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(chain) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	if chain[0].IsCA {
		return nil, errors.New("the first certificate is a CA, not a leaf")
	}
	return chain, nil
}

// ParsePrivateKey parses a PEM private key: PKCS#8, SEC 1 (EC) or PKCS#1
// (RSA).
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	s, err := keys.ParsePrivateKey(block)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// WriteFileAtomic writes data to path atomically (a temporary file in the
// same directory, fsynced, renamed over path) with mode perm (less the
// umask), so a reader sees the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := renameio.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeFile(path string, data []byte, perm os.FileMode) error {
	return WriteFileAtomic(path, data, perm)
}
