package keys

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJoin: a second host gets its own signing key, and a leaf for it from
// the first host's CA, without either private key crossing over. Both
// hosts' leaves chain to the one CA the registries trust, their kids
// differ, and they share the refresh secret. A second round renews the
// joined host's leaf for the same key.
func TestJoin(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	if err := Generate(a, ES256, now); err != nil {
		t.Fatal(err)
	}
	csr, err := Request(b, ES256)
	if err != nil {
		t.Fatal(err)
	}
	keyBefore, _ := os.ReadFile(filepath.Join(b, SigningKeyFile))
	if fi, err := os.Stat(filepath.Join(b, SigningKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key mode: %v %v", fi.Mode(), err)
	}
	if fi, _ := os.Stat(b); fi.Mode().Perm() != 0o700 {
		t.Errorf("keys directory mode %v, want 0700", fi.Mode().Perm())
	}
	leaf, err := Sign(a, csr, now)
	if err != nil {
		t.Fatal(err)
	}
	read := func(dir, name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if err := Join(b, leaf, read(a, CACertFile), read(a, RefreshKeyFile), now); err != nil {
		t.Fatal(err)
	}
	sa, err := Load(a, now)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Load(b, now)
	if err != nil {
		t.Fatal(err)
	}
	if sa.KeyID == sb.KeyID {
		t.Error("both hosts sign with the same key")
	}
	if !bytes.Equal(sa.RefreshKey, sb.RefreshKey) {
		t.Error("the refresh secret differs")
	}
	if !bytes.Equal(read(a, BundleFile), read(b, BundleFile)) {
		t.Error("the hosts' bundles differ: the registries would not trust both")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(read(a, BundleFile))
	if _, err := sb.Chain[0].Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now}); err != nil {
		t.Errorf("b's leaf does not verify against a's bundle: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b, CAKeyFile)); err == nil {
		t.Error("the joined host has a CA key")
	}
	for _, name := range []string{SigningKeyFile, RefreshKeyFile} {
		if fi, _ := os.Stat(filepath.Join(b, name)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}

	// Renewal: the same key, a new leaf.
	later := now.Add(300 * 24 * time.Hour)
	csr2, err := Request(b, ES256)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(keyBefore, read(b, SigningKeyFile)) {
		t.Fatal("a second request replaced the signing key")
	}
	leaf2, err := Sign(a, csr2, later)
	if err != nil {
		t.Fatal(err)
	}
	if err := Join(b, leaf2, read(a, CACertFile), read(a, RefreshKeyFile), later); err != nil {
		t.Fatal(err)
	}
	if s, err := Load(b, later.Add(200*24*time.Hour)); err != nil || s.KeyID != sb.KeyID {
		t.Errorf("renewed leaf: %v, kid %v", err, s)
	}
}

// TestJoinRefuses: bad input is refused with a message that says what is
// wrong, and nothing is installed.
func TestJoinRefuses(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	a, other, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "other"), filepath.Join(t.TempDir(), "b")
	for _, d := range []string{a, other} {
		if err := Generate(d, ES256, now); err != nil {
			t.Fatal(err)
		}
	}
	csr, err := Request(b, ES256)
	if err != nil {
		t.Fatal(err)
	}
	read := func(dir, name string) []byte {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		return data
	}
	leaf, err := Sign(a, csr, now)
	if err != nil {
		t.Fatal(err)
	}
	otherCSR, _ := Request(filepath.Join(t.TempDir(), "c"), ES256)
	otherLeaf, _ := Sign(a, otherCSR, now)

	if _, err := Sign(b, csr, now); err == nil || !strings.Contains(err.Error(), "sign on the host whose keys directory has the CA key") {
		t.Errorf("Sign without a CA key: %v", err)
	}
	if _, err := Sign(a, []byte("not a request"), now); err == nil {
		t.Error("Sign accepted garbage")
	}
	tampered := bytes.Replace(csr, []byte("A"), []byte("B"), 1)
	if _, err := Sign(a, tampered, now); err == nil {
		t.Error("Sign accepted a tampered request")
	}
	for _, tt := range []struct {
		name             string
		leaf, ca, secret []byte
		at               time.Time
		want             string
	}{
		{"leaf for another key", otherLeaf, read(a, CACertFile), read(a, RefreshKeyFile), now, "not for the key"},
		{"another CA", leaf, read(other, CACertFile), read(a, RefreshKeyFile), now, "does not verify"},
		{"expired leaf", leaf, read(a, CACertFile), read(a, RefreshKeyFile), now.Add(400 * 24 * time.Hour), "does not verify"},
		{"no refresh key", leaf, read(a, CACertFile), []byte("x"), now, "refresh key"},
		{"a key as the CA", leaf, read(a, SigningKeyFile), read(a, RefreshKeyFile), now, "CA certificate"},
		{"the leaf as the CA", leaf, leaf, read(a, RefreshKeyFile), now, "not a CA"},
	} {
		err := Join(b, tt.leaf, tt.ca, tt.secret, tt.at)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
		}
		if _, err := os.Stat(filepath.Join(b, SigningCrtFile)); err == nil {
			t.Fatalf("%s: a certificate was installed", tt.name)
		}
	}
}
