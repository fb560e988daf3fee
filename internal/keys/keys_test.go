package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func TestGenerateAndLoad(t *testing.T) {
	for _, alg := range []Algorithm{ES256, RS256} {
		t.Run(string(alg), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			if err := Generate(dir, alg, now); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(dir)
			if err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("dir mode %v, %v", fi.Mode().Perm(), err)
			}
			modes := map[string]os.FileMode{CAKeyFile: 0o600, SigningKeyFile: 0o600, RefreshKeyFile: 0o600,
				CACertFile: 0o644, SigningCrtFile: 0o644, BundleFile: 0o644, JWKSFile: 0o644}
			for name, want := range modes {
				fi, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != want {
					t.Errorf("%s mode %04o, want %04o", name, fi.Mode().Perm(), want)
				}
			}
			s, err := Load(dir, now)
			if err != nil {
				t.Fatal(err)
			}
			wantAlg := map[Algorithm]jose.SignatureAlgorithm{ES256: jose.ES256, RS256: jose.RS256}[alg]
			if s.Algorithm != wantAlg {
				t.Errorf("alg %s, want %s", s.Algorithm, wantAlg)
			}
			if len(s.Chain) != 2 || !s.Chain[1].IsCA || s.Chain[0].IsCA {
				t.Fatalf("chain %v", s.Chain)
			}
			// The bundle is the CA alone, so the leaf can rotate.
			bundle, _ := os.ReadFile(filepath.Join(dir, BundleFile))
			b, _ := pem.Decode(bundle)
			if b == nil || string(b.Bytes) != string(s.Chain[1].Raw) {
				t.Error("bundle.pem is not the CA certificate")
			}
			// The JWKS carries the signing key under the same kid as tokens.
			var set jose.JSONWebKeySet
			data, _ := os.ReadFile(filepath.Join(dir, JWKSFile))
			if err := json.Unmarshal(data, &set); err != nil || len(set.Keys) != 1 || set.Keys[0].KeyID != s.KeyID || set.Keys[0].IsPublic() == false {
				t.Errorf("jwks %s: %v", data, err)
			}
			if err := Generate(dir, alg, now); err == nil || !strings.Contains(err.Error(), "already exists") {
				t.Errorf("second Generate: %v, want refusal", err)
			}
			if s.NotAfter().Sub(now) < 360*24*time.Hour {
				t.Errorf("signing cert valid until %v only", s.NotAfter())
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	setup := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "k")
		if err := Generate(dir, ES256, now); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name    string
		mutate  func(t *testing.T, dir string)
		at      time.Time
		wantErr string
	}{
		{name: "world-readable key", wantErr: "mode 0644", mutate: func(_ *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, SigningKeyFile), 0o644)
		}},
		{name: "missing key", wantErr: "regctl keys generate", mutate: func(_ *testing.T, dir string) {
			os.Remove(filepath.Join(dir, SigningKeyFile))
		}},
		{name: "foreign key", wantErr: "does not match", mutate: func(_ *testing.T, dir string) {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), randReader{})
			der, _ := x509.MarshalPKCS8PrivateKey(k)
			os.WriteFile(filepath.Join(dir, SigningKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		}},
		{name: "garbage cert", wantErr: "no PEM block", mutate: func(_ *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, SigningCrtFile), []byte("junk"), 0o644)
		}},
		{name: "two certs", wantErr: "after the first PEM block", mutate: func(_ *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, SigningCrtFile))
			os.WriteFile(filepath.Join(dir, SigningCrtFile), append(b, b...), 0o644)
		}},
		{name: "other CA", wantErr: "does not verify", mutate: func(t *testing.T, dir string) {
			other := filepath.Join(t.TempDir(), "o")
			Generate(other, ES256, now)
			b, _ := os.ReadFile(filepath.Join(other, CACertFile))
			os.WriteFile(filepath.Join(dir, CACertFile), b, 0o644)
		}},
		{name: "leaf as the CA", wantErr: "is not a CA certificate", mutate: func(_ *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, SigningCrtFile))
			os.WriteFile(filepath.Join(dir, CACertFile), b, 0o644)
		}},
		{name: "expired signing cert", wantErr: "expired", at: now.Add(SigningValidity + time.Hour)},
		{name: "short refresh secret", wantErr: "shorter than 32", mutate: func(_ *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, RefreshKeyFile), pem.EncodeToMemory(&pem.Block{Type: "REGCTL REFRESH KEY", Bytes: []byte("x")}), 0o600)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := setup(t)
			if tt.mutate != nil {
				tt.mutate(t, dir)
			}
			at := now
			if !tt.at.IsZero() {
				at = tt.at
			}
			_, err := Load(dir, at)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load: %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

type randReader struct{}

func (randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return len(p), nil
}

// The libtrust key ID of a fixed key, as distribution 2.8 computes it
// (SHA-256 of the SPKI DER, 240 bits, base32, groups of 4).
func TestLibtrustKeyID(t *testing.T) {
	const pub = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9
q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==
-----END PUBLIC KEY-----`
	b, _ := pem.Decode([]byte(pub))
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := LibtrustKeyID(k)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$`).MatchString(kid) {
		t.Fatalf("kid %q has the wrong shape", kid)
	}
	// Computed independently: openssl pkey -pubin -outform DER | sha256, first 30 bytes, base32.
	const want = "UQHQ:6LRJ:OTOH:NKBN:6376:BDWQ:26MV:LR46:PLIM:EDMX:V2HZ:ERVN"
	if kid != want {
		t.Errorf("kid = %s, want %s", kid, want)
	}
}
