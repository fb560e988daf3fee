package keys

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func readAll(t *testing.T, dir string, names ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = b
	}
	return out
}

func jwksKIDs(t *testing.T, data []byte) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatalf("jwks %s: %v", data, err)
	}
	var kids []string
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Errorf("jwks holds a private key")
		}
		kids = append(kids, k.KeyID)
	}
	return kids
}

func TestRotate(t *testing.T) {
	for _, alg := range []Algorithm{ES256, RS256} {
		t.Run(string(alg), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			if err := Generate(dir, alg, now); err != nil {
				t.Fatal(err)
			}
			before, err := Load(dir, now)
			if err != nil {
				t.Fatal(err)
			}
			old := readAll(t, dir, CAKeyFile, CACertFile, BundleFile, RefreshKeyFile, SigningKeyFile, SigningCrtFile)
			stamp := Stamp(dir)

			later := now.Add(200 * 24 * time.Hour)
			rot, err := Rotate(dir, later)
			if err != nil {
				t.Fatal(err)
			}
			if rot.OldKeyID != before.KeyID || rot.NewKeyID == before.KeyID || rot.Algorithm != alg {
				t.Errorf("rotation %+v, old kid %s", rot, before.KeyID)
			}
			if Stamp(dir) == stamp {
				t.Error("Stamp did not change")
			}
			// The registry's trust and the refresh secret are untouched.
			after := readAll(t, dir, CAKeyFile, CACertFile, BundleFile, RefreshKeyFile, PrevSigningKeyFile, PrevSigningCrtFile)
			for _, n := range []string{CAKeyFile, CACertFile, BundleFile, RefreshKeyFile} {
				if !bytes.Equal(old[n], after[n]) {
					t.Errorf("%s changed", n)
				}
			}
			if !bytes.Equal(after[PrevSigningKeyFile], old[SigningKeyFile]) || !bytes.Equal(after[PrevSigningCrtFile], old[SigningCrtFile]) {
				t.Error("signing.prev.* are not the previous pair")
			}
			for name, want := range map[string]os.FileMode{PrevSigningKeyFile: 0o600, PrevSigningCrtFile: 0o644, SigningKeyFile: 0o600, SigningCrtFile: 0o644, JWKSFile: 0o644} {
				fi, err := os.Stat(filepath.Join(dir, name))
				if err != nil || fi.Mode().Perm() != want {
					t.Errorf("%s: mode %v, %v; want %04o", name, fi.Mode().Perm(), err, want)
				}
			}

			s, err := Load(dir, later)
			if err != nil {
				t.Fatal(err)
			}
			if s.KeyID != rot.NewKeyID || !s.NotAfter().Equal(rot.NotAfter) || s.NotAfter().Sub(later) < 360*24*time.Hour {
				t.Errorf("loaded kid %s not after %v; rotation %+v", s.KeyID, s.NotAfter(), rot)
			}
			if string(s.Algorithm) != strings.ToUpper(string(alg)) {
				t.Errorf("algorithm %s after rotating %s", s.Algorithm, alg)
			}
			if len(s.Previous) != 1 || !bytes.Equal(s.Previous[0].Raw, before.Chain[0].Raw) {
				t.Fatalf("Previous = %v", s.Previous)
			}
			want := []string{rot.NewKeyID, rot.OldKeyID}
			if got := jwksKIDs(t, mustRead(t, filepath.Join(dir, JWKSFile))); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("jwks.json kids %v, want %v", got, want)
			}
			served, err := s.JWKS(later)
			if err != nil {
				t.Fatal(err)
			}
			if got := jwksKIDs(t, served); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("served kids %v, want %v", got, want)
			}
			// Once the previous certificate has expired, it is no longer
			// published.
			if got := jwksKIDs(t, mustJWKS(t, s, before.NotAfter().Add(time.Second))); len(got) != 1 || got[0] != rot.NewKeyID {
				t.Errorf("kids after the old certificate expired: %v", got)
			}

			// Again: the first key drops out, the second becomes previous.
			rot2, err := Rotate(dir, later.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if rot2.OldKeyID != rot.NewKeyID {
				t.Errorf("second rotation replaced %s, want %s", rot2.OldKeyID, rot.NewKeyID)
			}
			if got := jwksKIDs(t, mustRead(t, filepath.Join(dir, JWKSFile))); strings.Join(got, " ") != rot2.NewKeyID+" "+rot.NewKeyID {
				t.Errorf("jwks after two rotations: %v", got)
			}
		})
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJWKS(t *testing.T, s *Set, at time.Time) []byte {
	t.Helper()
	b, err := s.JWKS(at)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Rotating is how an expired signing certificate is fixed.
func TestRotateExpiredLeaf(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if err := Generate(dir, ES256, now); err != nil {
		t.Fatal(err)
	}
	at := now.Add(SigningValidity + 24*time.Hour)
	if _, err := Load(dir, at); err == nil {
		t.Fatal("Load accepted an expired signing certificate")
	}
	if _, err := Rotate(dir, at); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, at); err != nil {
		t.Fatalf("after rotating: %v", err)
	}
}

// A leaf never outlives its CA.
func TestRotateClampsToCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if err := Generate(dir, ES256, now); err != nil {
		t.Fatal(err)
	}
	ca, err := ReadCertificate(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	rot, err := Rotate(dir, ca.NotAfter.Add(-10*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !rot.NotAfter.Equal(ca.NotAfter) {
		t.Errorf("new leaf until %v, CA until %v", rot.NotAfter, ca.NotAfter)
	}
	if _, err := Rotate(dir, ca.NotAfter.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), CACertFile) {
		t.Errorf("rotating under an expired CA: %v", err)
	}
}

func TestRotateRefuses(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(t *testing.T, dir string)
		wantErr []string
	}{
		{"no CA key", func(_ *testing.T, dir string) { os.Remove(filepath.Join(dir, CAKeyFile)) }, []string{CAKeyFile}},
		{"readable CA key", func(_ *testing.T, dir string) { os.Chmod(filepath.Join(dir, CAKeyFile), 0o640) }, []string{CAKeyFile, "mode 0640"}},
		{"truncated CA cert", func(t *testing.T, dir string) {
			b := mustRead(t, filepath.Join(dir, CACertFile))
			os.WriteFile(filepath.Join(dir, CACertFile), b[:len(b)/2], 0o644)
		}, []string{CACertFile}},
		{"mismatched signing pair", func(t *testing.T, dir string) {
			other := filepath.Join(t.TempDir(), "o")
			Generate(other, ES256, now)
			os.WriteFile(filepath.Join(dir, SigningCrtFile), mustRead(t, filepath.Join(other, SigningCrtFile)), 0o644)
		}, []string{SigningCrtFile, "does not match"}},
		{"signing cert of another CA", func(t *testing.T, dir string) {
			other := filepath.Join(t.TempDir(), "o")
			Generate(other, ES256, now)
			for _, f := range []string{SigningCrtFile, SigningKeyFile} {
				os.WriteFile(filepath.Join(dir, f), mustRead(t, filepath.Join(other, f)), 0o600)
			}
		}, []string{SigningCrtFile, "not issued by the CA"}},
		{"wrong block type", func(_ *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, SigningKeyFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), 0o600)
		}, []string{SigningKeyFile, "unsupported PEM block"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			if err := Generate(dir, ES256, now); err != nil {
				t.Fatal(err)
			}
			tt.mutate(t, dir)
			stamp := Stamp(dir)
			_, err := Rotate(dir, now)
			if err == nil {
				t.Fatal("Rotate succeeded")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if Stamp(dir) != stamp {
				t.Error("a refused rotation changed files")
			}
			if _, err := os.Stat(filepath.Join(dir, PrevSigningKeyFile)); err == nil {
				t.Error("a refused rotation wrote signing.prev.key")
			}
		})
	}
}

func TestLoadPreviousCorrupt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if err := Generate(dir, ES256, now); err != nil {
		t.Fatal(err)
	}
	if _, err := Rotate(dir, now); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, PrevSigningCrtFile)
	os.WriteFile(p, []byte("-----BEGIN CERTIFICATE-----\ntruncated"), 0o644)
	if _, err := Load(dir, now); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Load with a corrupt %s: %v", p, err)
	}
}

func TestExpiresSoon(t *testing.T) {
	s := &Set{Chain: []*x509.Certificate{{NotAfter: now.Add(ExpiryWarning)}}}
	if s.ExpiresSoon(now) {
		t.Error("exactly ExpiryWarning left counts as soon")
	}
	if !s.ExpiresSoon(now.Add(time.Second)) || !s.ExpiresSoon(now.Add(ExpiryWarning+time.Hour)) {
		t.Error("ExpiresSoon false with less left or after expiry")
	}
}

func TestReadCertificates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if err := Generate(dir, ES256, now); err != nil {
		t.Fatal(err)
	}
	ca := mustRead(t, filepath.Join(dir, CACertFile))
	leaf := mustRead(t, filepath.Join(dir, SigningCrtFile))
	p := filepath.Join(t.TempDir(), "bundle.pem")
	os.WriteFile(p, append(append([]byte{}, ca...), leaf...), 0o644)
	if cs, err := ReadCertificates(p); err != nil || len(cs) != 2 {
		t.Fatalf("two certificates: %d, %v", len(cs), err)
	}
	for name, data := range map[string][]byte{
		"empty":     nil,
		"key block": mustRead(t, filepath.Join(dir, SigningKeyFile)),
		"trailing":  append(append([]byte{}, ca...), "junk"...),
	} {
		os.WriteFile(p, data, 0o644)
		if _, err := ReadCertificates(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want an error naming %s", name, err, p)
		}
	}
}
