package certs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/certs"
	"github.com/regctl/regctl/internal/certs/certstest"
)

func TestStore(t *testing.T) {
	s := certs.Store{Dir: filepath.Join(t.TempDir(), "live")}
	if names, err := s.List(); err != nil || len(names) != 0 {
		t.Fatalf("List of a missing dir = %v, %v", names, err)
	}
	if _, err := s.Load("a.example"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing certificate: %v, want fs.ErrNotExist", err)
	}
	ca := certstest.NewCA(t, "certs.Store CA")
	now := time.Now()
	b := ca.Issue([]string{"a.example", "127.0.0.1"}, now, now.Add(time.Hour))
	c, err := s.Save("a.example", b, certs.Meta{Directory: testDirectory, Profile: "tlsserver"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Meta.Domains, []string{"a.example", "127.0.0.1"}) || c.Meta.Issuer != "certs.Store CA" || c.Meta.Serial == "" {
		t.Errorf("meta = %+v", c.Meta)
	}
	got, err := s.Load("a.example")
	if err != nil {
		t.Fatal(err)
	}
	if !got.HasMeta || got.Meta.Profile != "tlsserver" || got.Meta.Serial != c.Meta.Serial || len(got.Chain) != 2 {
		t.Errorf("loaded %+v", got)
	}

	// A mismatched key is refused and nothing changes.
	other := ca.Issue([]string{"a.example"}, now, now.Add(time.Hour))
	if _, err := s.Save("a.example", certs.Bundle{Fullchain: other.Fullchain, PrivateKey: b.PrivateKey}, certs.Meta{}); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	if again, _ := s.Load("a.example"); again.Meta.Serial != c.Meta.Serial {
		t.Error("a refused save changed the certificate")
	}

	// Without meta.json the leaf still says enough.
	if err := os.Remove(filepath.Join(s.Dir, "a.example", certs.MetaFile)); err != nil {
		t.Fatal(err)
	}
	got, err = s.Load("a.example")
	if err != nil {
		t.Fatal(err)
	}
	if got.HasMeta || got.Meta.Serial != c.Meta.Serial || len(got.Meta.Domains) != 2 {
		t.Errorf("without meta: %+v", got.Meta)
	}

	// List ignores directories without a certificate.
	if err := os.MkdirAll(filepath.Join(s.Dir, "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	if names, _ := s.List(); !slices.Equal(names, []string{"a.example"}) {
		t.Errorf("List = %v", names)
	}
	for _, bad := range []string{"../x", "", ".hidden", "a/b"} {
		if _, err := s.Load(bad); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%q) = %v, want a name error", bad, err)
		}
	}
}

func TestParseChain(t *testing.T) {
	ca := certstest.NewCA(t, "Chain CA")
	caPEM := ca.Issue([]string{"x"}, time.Now(), time.Now().Add(time.Hour)).Fullchain
	_, rootOnly, _ := strings.Cut(string(caPEM), "-----END CERTIFICATE-----\n")
	for name, in := range map[string]string{
		"empty":     "",
		"garbage":   "hello",
		"CA first":  rootOnly,
		"key block": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		if _, err := certs.ParseChain([]byte(in)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}
