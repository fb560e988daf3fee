package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Well-known ACME directories.
const (
	LetsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// KnownProfiles are the certificate profiles Let's Encrypt offers
// (draft-ietf-acme-profiles). An empty profile means the CA's default.
var KnownProfiles = []string{"classic", "tlsserver", "shortlived"}

// CheckProfile accepts "" and simple profile names ([a-z0-9-]); CAs other
// than Let's Encrypt may name theirs differently, so names outside
// KnownProfiles are not rejected here but by the CA.
func CheckProfile(p string) error {
	for _, c := range p {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return fmt.Errorf("invalid certificate profile %q: known profiles are %s", p, strings.Join(KnownProfiles, ", "))
		}
	}
	return nil
}

// IsStagingDirectory reports whether an ACME directory URL is a staging
// CA: Let's Encrypt's staging directory, or any URL whose host says
// "staging".
func IsStagingDirectory(directory string) bool {
	if directory == LetsEncryptStaging {
		return true
	}
	host := directory
	if _, rest, ok := strings.Cut(directory, "://"); ok {
		host, _, _ = strings.Cut(rest, "/")
	}
	return strings.Contains(strings.ToLower(host), "staging")
}

// Request is what an Issuer asks the CA for.
type Request struct {
	Domains []string // DNS names or IP addresses; the first is the common name
	Profile string   // certificate profile; "" for the CA's default
}

// Issued is a certificate an Issuer obtained.
type Issued struct {
	Bundle
	CertURL string
	// Challenge is how the names were validated.
	Challenge ChallengeMode
	// Replaces is the ARI certificate ID the order named as replaced, if
	// the CA accepted it.
	Replaces string
}

// Issuer obtains certificates from a CA. LegoIssuer is the ACME
// implementation; tests use fakes.
type Issuer interface {
	// Obtain gets a new certificate, with a new EC P-256 key, for
	// req.Domains.
	Obtain(ctx context.Context, req Request) (*Issued, error)
	// Renew gets a certificate that replaces old: like Obtain, and the new
	// order names old (its ARI certificate ID, RFC 9773 section 5), so the
	// CA can exempt it from rate limits and knows old may be revoked.
	Renew(ctx context.Context, old *x509.Certificate, req Request) (*Issued, error)
}

// RenewalInfoer is implemented by issuers whose CA may offer ACME Renewal
// Information (RFC 9773). The Manager finds it by type assertion.
type RenewalInfoer interface {
	// RenewalInfo returns the CA's suggested renewal window for leaf, or
	// an error wrapping ErrNoARI when the CA offers none.
	RenewalInfo(ctx context.Context, leaf *x509.Certificate) (*RenewalWindow, error)
}

// ErrNoARI means the CA does not offer renewal information.
var ErrNoARI = errors.New("the CA offers no renewal information (ARI)")
