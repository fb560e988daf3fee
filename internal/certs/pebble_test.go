//go:build integration

package certs_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regctl/regctl/internal/certs"
	"github.com/regctl/regctl/internal/certs/certstest"
)

// pebbleManager starts Pebble and returns a Manager with a LegoIssuer for
// it, whose standalone server listens on 127.0.0.1:httpPort.
func pebbleManager(t *testing.T, root string, mode certs.ChallengeMode) (*certs.Manager, *certstest.Pebble, int) {
	t.Helper()
	httpPort := certstest.FreePort(t)
	pebble := certstest.StartPebble(t, certstest.PebbleOptions{HTTPPort: httpPort})
	return newPebbleManager(t, root, pebble, mode), pebble, httpPort
}

func newPebbleManager(t *testing.T, root string, pebble *certstest.Pebble, mode certs.ChallengeMode) *certs.Manager {
	t.Helper()
	layout := certs.Layout{Root: root}
	iss, err := certs.NewLegoIssuer(certs.ACMEConfig{
		Directory: pebble.Directory,
		Email:     "ops@example.com",
		Layout:    layout,
		Roots:     pebble.APIRoots,
		Challenge: certs.ChallengeConfig{Mode: mode, HTTPAddress: "127.0.0.1", HTTPPort: pebble.HTTPPort},
		Logger:    certstest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &certs.Manager{Layout: layout, Issuer: iss, Directory: pebble.Directory, Logger: certstest.Logger(t), LockWait: time.Minute}
}

func TestPebbleStandalone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := t.TempDir()
	m, pebble, _ := pebbleManager(t, root, certs.ChallengeAuto)

	start := time.Now()
	res, err := m.Obtain(ctx, certs.ObtainOptions{Names: []string{"localhost"}, Profile: certstest.ProfileClassic})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("standalone issuance took %s", time.Since(start).Round(time.Millisecond))
	if !res.Obtained || res.Challenge != certs.ChallengeStandalone {
		t.Fatalf("result %+v", res)
	}
	leaf := res.Cert.Leaf
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("certificate key is %T, want EC P-256", leaf.PublicKey)
	}
	inter := x509.NewCertPool()
	for _, c := range res.Cert.Chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: pebble.IssuingRoots(t), Intermediates: inter}); err != nil {
		t.Errorf("the chain does not verify against Pebble's root: %v", err)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore).Round(time.Hour); got != 90*24*time.Hour {
		t.Errorf("lifetime %s, want 90 days (profile classic)", got)
	}

	accDir, _ := m.Layout.AccountDir(pebble.Directory, "ops@example.com")
	if fi, err := os.Stat(filepath.Join(accDir, certs.AccountKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("account key: %v %v", fi, err)
	}
	acct := func() string {
		var f struct{ Registration struct{ URI string } }
		b, err := os.ReadFile(filepath.Join(accDir, certs.AccountFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		return f.Registration.URI
	}
	uri := acct()
	if !strings.HasPrefix(uri, "https://127.0.0.1:") {
		t.Errorf("account URI %q", uri)
	}

	// ARI: Pebble's window is 2/3 into the lifetime, ±1 day.
	w, err := m.Issuer.(certs.RenewalInfoer).RenewalInfo(ctx, leaf)
	if err != nil {
		t.Fatal(err)
	}
	if mid := w.Start.Add(w.End.Sub(w.Start) / 2); mid.Sub(leaf.NotBefore).Round(24*time.Hour) != 60*24*time.Hour {
		t.Errorf("ARI window %s to %s", w.Start, w.End)
	}

	// A new process (new issuer) reuses the account and replaces the
	// certificate with an order naming it.
	m2 := newPebbleManager(t, root, pebble, certs.ChallengeStandalone)
	res2, err := m2.Renew(ctx, certs.RenewOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Renewed() != 1 {
		t.Fatalf("renewed %d", res2.Renewed())
	}
	if got := acct(); got != uri {
		t.Errorf("account changed from %s to %s", uri, got)
	}
	c := res2.Outcomes[0].Cert
	if c.Meta.Replaces == "" || c.Meta.Profile != certstest.ProfileClassic || c.Meta.Challenge != "standalone" {
		t.Errorf("meta %+v", c.Meta)
	}
	if !strings.Contains(pebble.Log(), "is a replacement of") {
		t.Error("Pebble did not log the order as a replacement (ARI replaces)")
	}

	// An account the CA does not know (deactivated, or the CA lost its
	// state) is registered again with the stored key.
	accPath := filepath.Join(accDir, certs.AccountFile)
	b, _ := os.ReadFile(accPath)
	bogus := strings.ReplaceAll(string(b), uri, strings.TrimSuffix(uri, "/")+"0000")
	if err := os.WriteFile(accPath, []byte(bogus), 0o600); err != nil {
		t.Fatal(err)
	}
	m3 := newPebbleManager(t, root, pebble, certs.ChallengeStandalone)
	if _, err := m3.Obtain(ctx, certs.ObtainOptions{Names: []string{"localhost"}, Profile: certstest.ProfileClassic, Force: true}); err != nil {
		t.Fatalf("obtain with an unknown account: %v", err)
	}
	if got := acct(); got != uri {
		t.Errorf("re-registering the same key gave account %s, want %s", got, uri)
	}
}

// TestPebbleDNS01: DNS-01 through the exec provider. A hook script writes
// the TXT value into a directory that a DNS server on 127.0.0.1 answers
// from; Pebble and lego's propagation check both ask that server.
func TestPebbleDNS01(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	records := t.TempDir()
	dnsAddr := startTestDNS(t, records)
	hook := filepath.Join(t.TempDir(), "dns-hook")
	script := "#!/bin/sh\n# $1 = present|cleanup, $2 = FQDN, $3 = value\n" +
		"echo \"$@\" >> " + records + "/calls\n" +
		"case $1 in present) printf '%s' \"$3\" > \"" + records + "/$2\" ;; cleanup) rm -f \"" + records + "/$2\" ;; esac\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EXEC_PATH", hook)
	t.Setenv("EXEC_POLLING_INTERVAL", "1")
	t.Setenv("EXEC_PROPAGATION_TIMEOUT", "30")
	t.Setenv("EXEC_SEQUENCE_INTERVAL", "1") // the two names share one TXT name; exec solves them in turn

	pebble := certstest.StartPebble(t, certstest.PebbleOptions{HTTPPort: certstest.FreePort(t), DNSServer: dnsAddr})
	layout := certs.Layout{Root: t.TempDir()}
	iss, err := certs.NewLegoIssuer(certs.ACMEConfig{
		Directory: pebble.Directory,
		Layout:    layout,
		Roots:     pebble.APIRoots,
		Challenge: certs.ChallengeConfig{Mode: certs.ChallengeDNS, DNSProvider: "exec", DNSResolvers: []string{dnsAddr}},
		Logger:    certstest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	m := &certs.Manager{Layout: layout, Issuer: iss, Directory: pebble.Directory, Logger: certstest.Logger(t)}
	res, err := m.Obtain(ctx, certs.ObtainOptions{Names: []string{"*.localhost", "localhost"}, Profile: certstest.ProfileClassic})
	if err != nil {
		t.Fatal(err)
	}
	if res.Challenge != certs.ChallengeDNS || res.Cert.Name != "_wildcard_.localhost" {
		t.Errorf("result %+v", res)
	}
	if got := strings.Join(res.Cert.Leaf.DNSNames, ","); got != "*.localhost,localhost" {
		t.Errorf("names %s", got)
	}
	calls, _ := os.ReadFile(filepath.Join(records, "calls"))
	if !strings.Contains(string(calls), "present _acme-challenge.localhost.") || !strings.Contains(string(calls), "cleanup _acme-challenge.localhost.") {
		t.Errorf("hook calls:\n%s", calls)
	}
}

// startTestDNS serves, over UDP and TCP on 127.0.0.1, the zone
// "localhost.": SOA and NS records, A 127.0.0.1 for every name, and TXT
// records read from files in dir named by the FQDN (one value per file;
// several files for one name are joined by the hook, not needed here).
func startTestDNS(t *testing.T, dir string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		t.Fatalf("tcp on the UDP port %s: %v", addr, err)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		soa := &dns.SOA{Hdr: dns.RR_Header{Name: "localhost.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
			Ns: "ns.localhost.", Mbox: "hostmaster.localhost.", Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 1}
		for _, q := range r.Question {
			name := strings.ToLower(q.Name)
			if !dns.IsSubDomain("localhost.", name) {
				m.Rcode = dns.RcodeRefused
				continue
			}
			hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 1}
			switch q.Qtype {
			case dns.TypeSOA:
				if name == "localhost." {
					m.Answer = append(m.Answer, soa)
				} else {
					m.Ns = append(m.Ns, soa)
				}
			case dns.TypeNS:
				m.Answer = append(m.Answer, &dns.NS{Hdr: hdr, Ns: "ns.localhost."})
			case dns.TypeA:
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
			case dns.TypeTXT:
				if v, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
					m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{string(v)}})
				} else {
					m.Ns = append(m.Ns, soa)
				}
			default:
				m.Ns = append(m.Ns, soa)
			}
		}
		_ = w.WriteMsg(m)
	})
	udp := &dns.Server{PacketConn: pc, Handler: handler}
	tcp := &dns.Server{Listener: l, Handler: handler}
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	t.Cleanup(func() {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
	})
	return addr
}
