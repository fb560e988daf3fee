package certs

import (
	"bytes"
	"context"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rfc7919Prime computes the RFC 7919 prime of b bits from its definition:
// p = 2^b - 2^{b-64} + {[2^{b-130} e] + X} * 2^64 - 1.
func rfc7919Prime(b int, x int64) *big.Int {
	// floor(2^{b-130} * e) with 64 guard bits: e = sum 1/k!.
	scale := new(big.Int).Lsh(big.NewInt(1), uint(b-130+64))
	sum, term := new(big.Int), new(big.Int).Set(scale)
	for k := int64(1); term.Sign() > 0; k++ {
		sum.Add(sum, term)
		term.Quo(term, big.NewInt(k))
	}
	sum.Rsh(sum, 64)
	sum.Add(sum, big.NewInt(x))
	p := new(big.Int).Lsh(big.NewInt(1), uint(b))
	p.Sub(p, new(big.Int).Lsh(big.NewInt(1), uint(b-64)))
	p.Add(p, sum.Lsh(sum, 64))
	return p.Sub(p, big.NewInt(1))
}

func TestFFDHEMatchesRFC7919(t *testing.T) {
	// X values from RFC 7919 appendix A.
	for bits, x := range map[int]int64{2048: 560316, 3072: 2625351, 4096: 5736041} {
		g, err := FFDHE(bits)
		if err != nil {
			t.Fatal(err)
		}
		if want := rfc7919Prime(bits, x); g.P.Cmp(want) != 0 {
			t.Errorf("ffdhe%d prime differs from the RFC 7919 formula", bits)
		}
		if g.P.BitLen() != bits || g.G.Int64() != 2 {
			t.Errorf("ffdhe%d: %d bits, generator %s", bits, g.P.BitLen(), g.G)
		}
		if name := g.Named(); name != "ffdhe"+itoa(bits) {
			t.Errorf("Named = %q", name)
		}
	}
	if _, err := FFDHE(1024); err == nil {
		t.Error("FFDHE(1024) succeeded")
	}
}

func TestFFDHEIsSafePrime(t *testing.T) {
	if testing.Short() {
		t.Skip("primality of 4096-bit numbers takes a while")
	}
	for _, bits := range FFDHEBits {
		g, _ := FFDHE(bits)
		if err := g.Check(); err != nil {
			t.Errorf("ffdhe%d: %v", bits, err)
		}
	}
}

func TestDHParamsPEMRoundTrip(t *testing.T) {
	g, _ := FFDHE(2048)
	data, err := g.PEM()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("-----BEGIN DH PARAMETERS-----\n")) {
		t.Fatalf("PEM starts with %q", data[:40])
	}
	back, err := ParseDHParams(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.P.Cmp(g.P) != 0 || back.G.Cmp(g.G) != 0 {
		t.Error("round trip changed the parameters")
	}
	// OpenSSL writes the named group with exactly the same DER.
	if openssl, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command(openssl, "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048").Output()
		if err != nil {
			t.Fatalf("openssl genpkey: %v", err)
		}
		if !bytes.Equal(bytes.TrimSpace(out), bytes.TrimSpace(data)) {
			t.Errorf("openssl's ffdhe2048 differs:\n%s\nours:\n%s", out, data)
		}
	}
}

func TestParseDHParamsErrors(t *testing.T) {
	for name, in := range map[string]string{
		"empty":     "",
		"wrong PEM": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"bad DER":   "-----BEGIN DH PARAMETERS-----\nAAAA\n-----END DH PARAMETERS-----\n",
	} {
		if _, err := ParseDHParams([]byte(in)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	// A privateValueLength is accepted.
	g, _ := FFDHE(2048)
	bad := &DHParams{P: big.NewInt(23), G: big.NewInt(2)}
	data, _ := bad.PEM()
	p, err := ParseDHParams(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(); err != nil {
		t.Errorf("23 is a safe prime: %v", err)
	}
	if (&DHParams{P: big.NewInt(29), G: big.NewInt(2)}).Check() == nil {
		t.Error("29 accepted as a safe prime")
	}
	if (&DHParams{P: g.P, G: new(big.Int).Sub(g.P, big.NewInt(1))}).Check() == nil {
		t.Error("generator p-1 accepted")
	}
}

func TestGenerateDHParams(t *testing.T) {
	var events strings.Builder
	start := time.Now()
	d, err := GenerateDHParams(context.Background(), 512, func(r rune) { events.WriteRune(r) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("512 bits in %s, %d progress events", time.Since(start).Round(time.Millisecond), events.Len())
	if d.P.BitLen() != 512 {
		t.Errorf("prime has %d bits", d.P.BitLen())
	}
	if m := new(big.Int).Mod(d.P, big.NewInt(24)).Int64(); m != 23 {
		t.Errorf("p mod 24 = %d, want 23", m)
	}
	if err := d.Check(); err != nil {
		t.Error(err)
	}
	if !strings.HasSuffix(events.String(), string(ProgressFound)) {
		t.Errorf("progress %q does not end with %q", events.String(), ProgressFound)
	}
	if d.Named() != "" {
		t.Error("a fresh prime is named")
	}
	data, err := d.PEM()
	if err != nil {
		t.Fatal(err)
	}
	opensslCheck(t, data)
}

func TestGenerateDHParamsCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := GenerateDHParams(ctx, 4096, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if _, err := GenerateDHParams(context.Background(), 256, nil); err == nil {
		t.Error("256 bits accepted")
	}
}

func TestFFDHEOpenSSLCheck(t *testing.T) {
	for _, bits := range FFDHEBits {
		g, _ := FFDHE(bits)
		data, _ := g.PEM()
		opensslCheck(t, data)
	}
}

// opensslCheck runs `openssl dhparam -check` on data when openssl exists.
func opensslCheck(t *testing.T, data []byte) {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl not found; skipping openssl dhparam -check")
		return
	}
	path := filepath.Join(t.TempDir(), "dhparams.pem")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "dhparam", "-in", path, "-check", "-noout").CombinedOutput()
	if err != nil {
		t.Errorf("openssl dhparam -check: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "DH parameters appear to be ok") {
		t.Errorf("openssl dhparam -check says:\n%s", out)
	}
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }
