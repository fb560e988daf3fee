//go:build integration

package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStartFerretDB(t *testing.T) {
	bin := Require(t, EnvFerretDB, "the path of a ferretdb binary")
	uri, stop := StartFerretDB(t, bin)
	addr := strings.TrimSuffix(strings.TrimPrefix(uri, "mongodb://"), "/")
	if err := DialCheck(addr)(); err != nil {
		t.Fatalf("FerretDB at %s: %v", uri, err)
	}
	stop()
	if err := DialCheck(addr)(); err == nil {
		t.Errorf("FerretDB at %s still accepts connections after stop", uri)
	}
}

// TestStartRegistry starts both registry lines with a self-made key, so the
// harness is checked apart from regctl's keys.
func TestStartRegistry(t *testing.T) {
	dir := t.TempDir()
	bundle, jwks := writeTestKeys(t, dir)
	for _, v := range []struct {
		version Version
		env     string
	}{{Distribution2, EnvRegistry2}, {Distribution3, EnvRegistry3}} {
		t.Run(v.version.Name, func(t *testing.T) {
			bin := Require(t, v.env, "the path of the "+v.version.Name+" registry binary")
			tc := TokenConfig{Realm: "http://localhost:1/auth/token", Service: "svc", Issuer: "iss", RootCertBundle: bundle}
			if v.version.Major >= 3 {
				tc.JWKS = jwks
			}
			r := StartRegistry(t, bin, v.version, tc) // waits for the challenge naming the realm
			if !strings.HasPrefix(r.Host, "localhost:") {
				t.Errorf("Host = %q, want localhost:PORT", r.Host)
			}
		})
	}
}

func TestDockerd(t *testing.T) {
	host := Dockerd(t)
	docker := RequireBinary(t, "", "docker", "the docker CLI")
	MustRun(t, []string{"DOCKER_HOST=" + host, "DOCKER_CONFIG=" + t.TempDir()}, "", docker, "version")
}

func TestStartDockerd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dockerd needs root")
	}
	bin := RequireBinary(t, "", "dockerd", "Debian's docker.io")
	docker := RequireBinary(t, "", "docker", "the docker CLI")
	host := StartDockerd(t, bin, docker) // waits for docker info
	MustRun(t, []string{"DOCKER_HOST=" + host, "DOCKER_CONFIG=" + t.TempDir()}, "", docker, "version")
}

func TestMakeImage(t *testing.T) {
	crane := Require(t, EnvCrane, "the path of a crane binary")
	img := MakeImage(t, crane, t.TempDir())
	r := MustRun(t, nil, "", "tar", "-tf", img)
	if !strings.Contains(r.Stdout, "manifest.json") {
		t.Errorf("%s is no docker-archive tarball; it holds:\n%s", img, r.Stdout)
	}
}

// writeTestKeys writes a self-signed EC certificate to dir/bundle.pem and
// its public key as a JWK set to dir/jwks.json.
func writeTestKeys(t *testing.T, dir string) (bundle, jwks string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "testenv"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	bundle = filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	enc := func(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.FillBytes(make([]byte, 32))) }
	set, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": "testenv", "x": enc(key.X), "y": enc(key.Y),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	jwks = filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwks, set, 0o600); err != nil {
		t.Fatal(err)
	}
	return bundle, jwks
}
