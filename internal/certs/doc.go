// Package certs obtains, stores, renews and reports the TLS certificates
// nginx serves, and writes its Diffie-Hellman parameters.
//
// The pieces:
//
//   - Issuer (Obtain, Renew) talks to a CA. LegoIssuer is the ACME
//     implementation on lego v4 (used as a library): account key EC P-256
//     created once and stored with its registration, certificate keys EC
//     P-256, HTTP-01 standalone or webroot (chosen by probing nginx) or
//     DNS-01 through one of DNSProviders, certificate profiles, and ACME
//     Renewal Information (RenewalInfoer) with "replaces" on renewal.
//   - Store keeps certificates under ROOT/certs/live/NAME (Layout), written
//     atomically with mode 0600, with a meta.json (Meta) recording the CA,
//     profile and last ARI window.
//   - Decide is the renewal decision: a pure function of the clock, the
//     validity and the ARI window.
//   - Manager ties them together under a file lock (lock, re-check, act):
//     Obtain, Renew (then Reloader: nginx -t and reload, then a deploy
//     hook) and Status. It refuses to put a staging certificate over a
//     production one.
//   - FFDHE and GenerateDHParams provide RFC 7919 groups and fresh safe
//     primes for nginx's ssl_dhparam.
//
// Nothing here reads flags or configuration; internal/cli does.
package certs
