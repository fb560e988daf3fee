package certs

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
)

// DefaultRoot is the install root regctl provisions.
const DefaultRoot = "/opt/regctl"

// File names inside a certificate's directory and an account's directory.
const (
	FullchainFile  = "fullchain.pem" // leaf first, then intermediates
	PrivkeyFile    = "privkey.pem"   // PKCS#8 or SEC 1 EC key, mode 0600
	MetaFile       = "meta.json"     // Meta: CA, profile, ARI window
	AccountKeyFile = "account.key"   // ACME account key (EC P-256), mode 0600
	AccountFile    = "account.json"  // ACME registration (URI and body)
)

// Layout names the files regctl keeps under its install root:
//
//	ROOT/certs/live/NAME/{fullchain.pem,privkey.pem,meta.json}
//	ROOT/certs/accounts/CAHOST/EMAIL/{account.key,account.json}
//	ROOT/certs/dhparams.pem
//	ROOT/certs/.lock, ROOT/certs/.reload-pending
//	ROOT/acme-webroot/.well-known/acme-challenge/
//	ROOT/compose.yaml
//
// Directories regctl creates under ROOT/certs have mode 0700.
type Layout struct{ Root string }

// CertsDir is ROOT/certs.
func (l Layout) CertsDir() string { return filepath.Join(l.Root, "certs") }

// LiveDir is ROOT/certs/live, holding one directory per certificate.
func (l Layout) LiveDir() string { return filepath.Join(l.CertsDir(), "live") }

// CertDir is ROOT/certs/live/NAME.
func (l Layout) CertDir(name string) string { return filepath.Join(l.LiveDir(), name) }

// Fullchain is ROOT/certs/live/NAME/fullchain.pem (nginx's ssl_certificate).
func (l Layout) Fullchain(name string) string { return filepath.Join(l.CertDir(name), FullchainFile) }

// Privkey is ROOT/certs/live/NAME/privkey.pem (nginx's ssl_certificate_key).
func (l Layout) Privkey(name string) string { return filepath.Join(l.CertDir(name), PrivkeyFile) }

// DHParams is ROOT/certs/dhparams.pem (nginx's ssl_dhparam).
func (l Layout) DHParams() string { return filepath.Join(l.CertsDir(), "dhparams.pem") }

// LockFile is ROOT/certs/.lock, flocked by every run that writes.
func (l Layout) LockFile() string { return filepath.Join(l.CertsDir(), ".lock") }

// ReloadPendingFile is ROOT/certs/.reload-pending, present while nginx may
// still serve a replaced certificate (a reload failed).
func (l Layout) ReloadPendingFile() string { return filepath.Join(l.CertsDir(), ".reload-pending") }

// Webroot is ROOT/acme-webroot; nginx serves /.well-known/acme-challenge/
// from it.
func (l Layout) Webroot() string { return filepath.Join(l.Root, "acme-webroot") }

// ComposeFile is ROOT/compose.yaml, the docker compose project with the
// nginx service.
func (l Layout) ComposeFile() string { return filepath.Join(l.Root, "compose.yaml") }

// AccountDir is ROOT/certs/accounts/CAHOST/EMAIL for the CA at directory
// and the account's email ("default" without one). CAHOST is the
// directory URL's host with ':' replaced by '_'.
func (l Layout) AccountDir(directory, email string) (string, error) {
	u, err := url.Parse(directory)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("ACME directory %q is not an absolute URL", directory)
	}
	host := strings.ReplaceAll(strings.ToLower(u.Host), ":", "_")
	if email == "" {
		email = "default"
	}
	if strings.ContainsAny(email, "/\\\x00") || email == "." || email == ".." {
		return "", fmt.Errorf("invalid account email %q", email)
	}
	return filepath.Join(l.CertsDir(), "accounts", host, email), nil
}

// CertName is the directory name of a certificate for names: the first
// name, lowercased, with a leading "*." written as "_wildcard_." and the
// colons of an IPv6 address as "_".
func CertName(names []string) (string, error) {
	if len(names) == 0 {
		return "", errors.New("no names")
	}
	n := strings.ToLower(names[0])
	if rest, ok := strings.CutPrefix(n, "*."); ok {
		n = "_wildcard_." + rest
	}
	n = strings.ReplaceAll(n, ":", "_")
	if err := checkCertName(n); err != nil {
		return "", err
	}
	return n, nil
}

func checkCertName(n string) error {
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\\:*\x00") || strings.HasPrefix(n, ".") {
		return fmt.Errorf("invalid certificate name %q", n)
	}
	return nil
}

// NormalizeNames lowercases names, removes duplicates keeping the order,
// and checks that each is a DNS name (optionally with a leading "*.") or
// an IP address.
func NormalizeNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, errors.New("no names given")
	}
	seen := map[string]bool{}
	var out []string
	for _, raw := range names {
		n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(raw)), ".")
		if err := checkName(n); err != nil {
			return nil, err
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

func checkName(n string) error {
	if net.ParseIP(n) != nil {
		return nil
	}
	host := strings.TrimPrefix(n, "*.")
	if host == "" || len(host) > 253 {
		return fmt.Errorf("invalid name %q", n)
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("invalid name %q", n)
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return fmt.Errorf("invalid name %q: character %q", n, c)
			}
		}
	}
	return nil
}

// IsWildcard reports whether a name is a wildcard ("*.example.com").
func IsWildcard(name string) bool { return strings.HasPrefix(name, "*.") }
