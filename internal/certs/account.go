package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/go-acme/lego/v4/registration"
)

// account is an ACME account stored in ROOT/certs/accounts/CAHOST/EMAIL:
// account.key (EC P-256, SEC 1 PEM, mode 0600), created once, and
// account.json (the registration, mode 0600), written after the CA
// accepted it. It implements lego's registration.User.
type account struct {
	dir   string
	email string
	key   *ecdsa.PrivateKey
	reg   *registration.Resource
}

// accountFile is account.json.
type accountFile struct {
	Email        string                 `json:"email,omitempty"`
	Directory    string                 `json:"directory"`
	Registration *registration.Resource `json:"registration"`
}

func (a *account) GetEmail() string                        { return a.email }
func (a *account) GetRegistration() *registration.Resource { return a.reg }
func (a *account) GetPrivateKey() crypto.PrivateKey        { return a.key }

// loadAccount reads the account in dir, creating its key if there is
// none. reg is nil until the account is registered.
func loadAccount(dir, email string) (*account, error) {
	a := &account{dir: dir, email: email}
	keyPath := filepath.Join(dir, AccountKeyFile)
	data, err := os.ReadFile(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if a.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, fmt.Errorf("generate account key: %w", err)
		}
		der, err := x509.MarshalECPrivateKey(a.key)
		if err != nil {
			return nil, fmt.Errorf("encode account key: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read account key %s: %w", keyPath, err)
	default:
		k, err := ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("read account key %s: %w", keyPath, err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("read account key %s: unrecognized key type: %T", keyPath, k)
		}
		a.key = ek
	}
	regPath := filepath.Join(dir, AccountFile)
	switch raw, err := os.ReadFile(regPath); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", regPath, err)
	default:
		var f accountFile
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("parse %s: %w", regPath, err)
		}
		if f.Registration != nil && f.Registration.URI != "" {
			a.reg = f.Registration
		}
	}
	return a, nil
}

// save writes account.json.
func (a *account) save(directory string) error {
	data, err := json.MarshalIndent(accountFile{Email: a.email, Directory: directory, Registration: a.reg}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode account: %w", err)
	}
	return writeFile(filepath.Join(a.dir, AccountFile), append(data, '\n'), 0o600)
}
