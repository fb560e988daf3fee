package certs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-acme/lego/v4/registration"
)

func TestAccount(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "accounts", "ca", "ops@example.com")
	a, err := loadAccount(dir, "ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if a.GetRegistration() != nil || a.GetEmail() != "ops@example.com" {
		t.Errorf("new account: %+v", a)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, AccountKeyFile): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	a.reg = &registration.Resource{URI: "https://ca.example/acct/1"}
	if err := a.save("https://ca.example/dir"); err != nil {
		t.Fatal(err)
	}
	b, err := loadAccount(dir, "ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !b.key.Equal(a.key) {
		t.Error("the account key changed")
	}
	if b.reg == nil || b.reg.URI != "https://ca.example/acct/1" {
		t.Errorf("registration not reused: %+v", b.reg)
	}
	if fi, _ := os.Stat(filepath.Join(dir, AccountFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("account.json mode %v", fi.Mode().Perm())
	}
	if err := os.WriteFile(filepath.Join(dir, AccountKeyFile), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadAccount(dir, ""); err == nil {
		t.Error("a junk key loaded")
	}
}
