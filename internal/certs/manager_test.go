package certs_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regctl/regctl/internal/certs"
	"github.com/regctl/regctl/internal/certs/certstest"
	"github.com/regctl/regctl/internal/testenv"
)

const testDirectory = "https://acme.test/directory"

var errBoom = errors.New("boom")

func newTestManager(t *testing.T) (*certs.Manager, *certstest.FakeIssuer, *certstest.RecordingReloader, *testenv.Clock) {
	t.Helper()
	clock := testenv.NewClock(time.Now().UTC().Truncate(time.Second))
	iss := certstest.NewFakeIssuer(t, clock.Now)
	rl := &certstest.RecordingReloader{}
	m := &certs.Manager{
		Layout:    certs.Layout{Root: t.TempDir()},
		Issuer:    iss,
		Directory: testDirectory,
		Reloader:  rl,
		Logger:    certstest.Logger(t),
		Now:       clock.Now,
		LockWait:  5 * time.Second,
	}
	return m, iss, rl, clock
}

func TestManagerObtain(t *testing.T) {
	ctx := context.Background()
	m, iss, rl, clock := newTestManager(t)

	res, err := m.Obtain(ctx, certs.ObtainOptions{Names: []string{"Registry.Example.com", "www.example.com", "registry.example.com"}, Profile: "classic"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Obtained || res.Previous != nil || res.Challenge != certs.ChallengeWebroot || !res.Reloaded {
		t.Errorf("result = %+v", res)
	}
	if got := rl.Calls(); got != "check,reload" {
		t.Errorf("reloader calls = %q", got)
	}
	dir := m.Layout.CertDir("registry.example.com")
	for file, mode := range map[string]os.FileMode{certs.PrivkeyFile: 0o600, certs.FullchainFile: 0o600, certs.MetaFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", file, fi.Mode().Perm(), mode)
		}
	}
	for _, d := range []string{dir, m.Layout.LiveDir()} {
		if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o700 {
			t.Errorf("%s mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
	c, err := certs.Store{Dir: m.Layout.LiveDir()}.Load("registry.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"registry.example.com", "www.example.com"}; !slices.Equal(c.Meta.Domains, want) {
		t.Errorf("domains = %v, want %v", c.Meta.Domains, want)
	}
	if c.Meta.Directory != testDirectory || c.Meta.Staging || c.Meta.Profile != "classic" || c.Meta.Issuer != "Fake Test CA" || c.Meta.Challenge != "webroot" {
		t.Errorf("meta = %+v", c.Meta)
	}

	// Again: the certificate is valid and not due, nothing happens.
	res, err = m.Obtain(ctx, certs.ObtainOptions{Names: []string{"registry.example.com", "WWW.example.com."}, Profile: "classic"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Obtained || !strings.Contains(res.Reason, "a valid certificate for these names exists") {
		t.Errorf("second obtain: %+v", res)
	}
	if n := len(iss.Calls()); n != 1 {
		t.Errorf("issuer called %d times: %v", n, iss.Calls())
	}

	// Forced: a replacement order naming the old certificate.
	clock.Advance(time.Hour)
	res, err = m.Obtain(ctx, certs.ObtainOptions{Names: []string{"registry.example.com", "www.example.com"}, Profile: "classic", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Obtained || res.Previous == nil {
		t.Fatalf("forced obtain: %+v", res)
	}
	calls := iss.Calls()
	if want := "renew registry.example.com,www.example.com profile=classic replaces=" + res.Previous.Leaf.SerialNumber.Text(16); calls[1] != want {
		t.Errorf("call = %q, want %q", calls[1], want)
	}

	// Different names: a new order (replacing, since a name is shared).
	res, err = m.Obtain(ctx, certs.ObtainOptions{Names: []string{"registry.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Obtained || !slices.Equal(res.Cert.Meta.Domains, []string{"registry.example.com"}) {
		t.Errorf("obtain with fewer names: %+v", res)
	}
}

func TestManagerObtainStandaloneDoesNotReload(t *testing.T) {
	m, iss, rl, _ := newTestManager(t)
	m.Issuer = standaloneIssuer{iss}
	if _, err := m.Obtain(context.Background(), certs.ObtainOptions{Names: []string{"a.example"}}); err != nil {
		t.Fatal(err)
	}
	if got := rl.Calls(); got != "" {
		t.Errorf("reloader calls = %q; nginx is down during standalone issuance", got)
	}
}

type standaloneIssuer struct{ *certstest.FakeIssuer }

func (s standaloneIssuer) Obtain(ctx context.Context, req certs.Request) (*certs.Issued, error) {
	iss, err := s.FakeIssuer.Obtain(ctx, req)
	if iss != nil {
		iss.Challenge = certs.ChallengeStandalone
	}
	return iss, err
}

func TestManagerStagingOverProduction(t *testing.T) {
	ctx := context.Background()
	m, iss, _, _ := newTestManager(t)
	names := []string{"registry.example.com"}
	if _, err := m.Obtain(ctx, certs.ObtainOptions{Names: names}); err != nil {
		t.Fatal(err)
	}
	prod, _ := certs.Store{Dir: m.Layout.LiveDir()}.Load("registry.example.com")

	for _, staging := range []struct {
		name      string
		directory string
		flag      bool
	}{
		{"LE staging", certs.LetsEncryptStaging, false},
		{"--staging with a custom directory", testDirectory, true},
	} {
		t.Run(staging.name, func(t *testing.T) {
			sm := *m
			sm.Directory, sm.Staging = staging.directory, staging.flag
			_, err := sm.Obtain(ctx, certs.ObtainOptions{Names: names, Force: true})
			if !errors.Is(err, certs.ErrStagingOverProduction) {
				t.Fatalf("obtain: err = %v, want certs.ErrStagingOverProduction", err)
			}
			res, err := sm.Renew(ctx, certs.RenewOptions{Force: true})
			if !errors.Is(err, certs.ErrStagingOverProduction) || res.Renewed() != 0 {
				t.Fatalf("renew: renewed %d, err = %v, want certs.ErrStagingOverProduction", res.Renewed(), err)
			}
			now, _ := certs.Store{Dir: m.Layout.LiveDir()}.Load("registry.example.com")
			if now.Meta.Serial != prod.Meta.Serial {
				t.Error("the production certificate was replaced")
			}
		})
	}
	if n := len(iss.Calls()); n != 1 {
		t.Fatalf("the CA was asked %d times: %v", n, iss.Calls())
	}

	// --break-my-certs does it, and records the staging origin.
	sm := *m
	sm.Staging = true
	res, err := sm.Obtain(ctx, certs.ObtainOptions{Names: names, BreakMyCerts: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Obtained || !res.Cert.Meta.Staging {
		t.Fatalf("break-my-certs: %+v", res)
	}
	// Production over staging needs no flag, even when not due.
	res, err = m.Obtain(ctx, certs.ObtainOptions{Names: names})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Obtained || res.Cert.Meta.Staging {
		t.Fatalf("production over staging: %+v", res)
	}
}

func TestManagerStagingByIssuerName(t *testing.T) {
	m, _, _, clock := newTestManager(t)
	stagingCA := certstest.NewCA(t, "(STAGING) Pseudo Plum E5")
	b := stagingCA.Issue([]string{"a.example"}, clock.Now(), clock.Now().Add(90*24*time.Hour))
	c, err := certs.Store{Dir: m.Layout.LiveDir()}.Save("a.example", b, certs.Meta{Directory: certs.LetsEncryptProduction})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Staging() || !c.Meta.Staging {
		t.Error("a certificate from a (STAGING) issuer is not recognised as staging")
	}
	// So a staging run may replace it.
	m.Directory = certs.LetsEncryptStaging
	if _, err := m.Obtain(context.Background(), certs.ObtainOptions{Names: []string{"a.example"}, Force: true}); err != nil {
		t.Errorf("staging over staging: %v", err)
	}
}

func TestManagerRenew(t *testing.T) {
	ctx := context.Background()
	m, iss, rl, clock := newTestManager(t)
	runner := &certstest.RecordingRunner{}
	m.Runner = runner
	if _, err := m.Obtain(ctx, certs.ObtainOptions{Names: []string{"a.example"}, Profile: "shortlived"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Obtain(ctx, certs.ObtainOptions{Names: []string{"b.example"}}); err != nil {
		t.Fatal(err)
	}
	rl.Calls()
	day := 24 * time.Hour
	// The CA suggests day 59-61 for every certificate.
	iss.Set(func(f *certstest.FakeIssuer) {
		f.Window = func(leaf *x509.Certificate) (*certs.RenewalWindow, error) {
			return &certs.RenewalWindow{Start: leaf.NotBefore.Add(59 * day), End: leaf.NotBefore.Add(61 * day), FetchedAt: clock.Now()}, nil
		}
	})
	opts := certs.RenewOptions{DeployHook: "echo deployed"}

	// Day 30: nothing due, nothing reloaded; the window is recorded.
	clock.Advance(30 * day)
	res, err := m.Renew(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Renewed() != 0 || res.Reloaded || rl.Calls() != "" || len(runner.Commands()) != 0 {
		t.Fatalf("day 30: renewed %d, reloaded %v, reloader %q, hooks %d", res.Renewed(), res.Reloaded, rl.Calls(), len(runner.Commands()))
	}
	for _, o := range res.Outcomes {
		if o.Decision.Due || o.Decision.Reason != certs.ReasonARILater {
			t.Errorf("%s: %v", o.Name, o.Decision)
		}
	}
	c, _ := certs.Store{Dir: m.Layout.LiveDir()}.Load("a.example")
	if !c.Meta.ARI.Valid() || !c.Meta.ARI.Start.Equal(c.Leaf.NotBefore.Add(59*day)) {
		t.Errorf("ARI window not recorded: %+v", c.Meta.ARI)
	}

	// Six hours before the window opens: due, because the next run (12h)
	// would be inside it.
	clock.Advance(29*day - 6*time.Hour)
	res, err = m.Renew(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Renewed() != 2 || !res.Reloaded || rl.Calls() != "check,reload" {
		t.Fatalf("day 59: renewed %d, reloaded %v, reloader %q", res.Renewed(), res.Reloaded, rl.Calls())
	}
	calls := iss.Calls()
	if !strings.HasPrefix(calls[len(calls)-2], "renew a.example profile=shortlived replaces=") {
		t.Errorf("renewal call %q does not keep the profile or name the replaced certificate", calls[len(calls)-2])
	}
	if len(runner.Commands()) != 2 {
		t.Fatalf("deploy hook ran %d times", len(runner.Commands()))
	}
	hook := runner.Commands()[0]
	if !slices.Equal(hook.Argv, []string{"sh", "-c", "echo deployed"}) ||
		!slices.Contains(hook.Env, "RENEWED_LINEAGE="+m.Layout.CertDir("a.example")) ||
		!slices.Contains(hook.Env, "RENEWED_DOMAINS=a.example") {
		t.Errorf("hook command %+v", hook)
	}
	for _, o := range res.Outcomes {
		if o.Decision.Reason != certs.ReasonARISoon || o.Previous == nil || o.Cert.Meta.Serial == o.Previous.Meta.Serial {
			t.Errorf("%s: %+v", o.Name, o)
		}
	}

	// The next run: nothing due.
	rl.Calls()
	clock.Advance(12 * time.Hour)
	res, err = m.Renew(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Renewed() != 0 || rl.Calls() != "" {
		t.Errorf("second run renewed %d, reloader %q", res.Renewed(), rl.Calls())
	}
}

func TestManagerRenewErrors(t *testing.T) {
	ctx := context.Background()
	m, iss, rl, clock := newTestManager(t)
	if _, err := m.Obtain(ctx, certs.ObtainOptions{Names: []string{"a.example"}}); err != nil {
		t.Fatal(err)
	}
	rl.Calls()
	clock.Advance(61 * 24 * time.Hour) // a third left, no ARI

	t.Run("CA fails", func(t *testing.T) {
		iss.Set(func(f *certstest.FakeIssuer) { f.Err = errBoom })
		defer iss.Set(func(f *certstest.FakeIssuer) { f.Err = nil })
		res, err := m.Renew(ctx, certs.RenewOptions{})
		if !errors.Is(err, errBoom) || res.Renewed() != 0 || rl.Calls() != "" {
			t.Errorf("err %v, renewed %d, reloader %q", err, res.Renewed(), rl.Calls())
		}
	})
	t.Run("nginx -t fails", func(t *testing.T) {
		rl.CheckErr = errBoom
		res, err := m.Renew(ctx, certs.RenewOptions{})
		if !errors.Is(err, errBoom) || res.Renewed() != 1 || res.Reloaded || rl.Calls() != "check" {
			t.Errorf("err %v, renewed %d, reloaded %v, reloader %q", err, res.Renewed(), res.Reloaded, rl.Calls())
		}
	})
	t.Run("the next run retries the reload", func(t *testing.T) {
		if pending, _ := m.ReloadPending(); !pending {
			t.Fatal("no reload pending after a failed nginx -t")
		}
		rl.CheckErr = nil
		res, err := m.Renew(ctx, certs.RenewOptions{})
		if err != nil || res.Renewed() != 0 || !res.Reloaded || rl.Calls() != "check,reload" {
			t.Errorf("err %v, renewed %d, reloaded %v", err, res.Renewed(), res.Reloaded)
		}
		if pending, _ := m.ReloadPending(); pending {
			t.Error("reload still pending")
		}
		res, _ = m.Renew(ctx, certs.RenewOptions{})
		if res.Reloaded || rl.Calls() != "" {
			t.Error("reloaded again with nothing pending")
		}
	})
	t.Run("unknown name", func(t *testing.T) {
		if _, err := m.Renew(ctx, certs.RenewOptions{Names: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `no certificate called "nope"`) {
			t.Errorf("err = %v", err)
		}
	})
}

// TestManagerRenewRecheck: another run renews the certificate while this
// one waits for the lock; this run must notice and not renew again.
func TestManagerRenewRecheck(t *testing.T) {
	ctx := context.Background()
	m, iss, _, clock := newTestManager(t)
	if _, err := m.Obtain(ctx, certs.ObtainOptions{Names: []string{"a.example"}}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(61 * 24 * time.Hour)

	other, err := certs.TryLock(m.Layout.LockFile())
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	onARI := func() {
		// The "other run" finishes its renewal and releases the lock.
		b := iss.CA.Issue([]string{"a.example"}, clock.Now(), clock.Now().Add(90*24*time.Hour))
		if _, err := (certs.Store{Dir: m.Layout.LiveDir()}).Save("a.example", b, certs.Meta{Directory: testDirectory}); err != nil {
			t.Error(err)
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = other.Release()
		}()
	}
	iss.Set(func(f *certstest.FakeIssuer) { f.OnARI = func() { once.Do(onARI) } })
	res, err := m.Renew(ctx, certs.RenewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Renewed() != 0 || res.Outcomes[0].Note != "already renewed by another run" {
		t.Errorf("outcome %+v", res.Outcomes[0])
	}
	if n := len(iss.Calls()); n != 1 {
		t.Errorf("the CA was asked %d times", n)
	}
}

func TestManagerLockTimeout(t *testing.T) {
	m, _, _, _ := newTestManager(t)
	m.LockWait = 200 * time.Millisecond
	l, err := certs.TryLock(m.Layout.LockFile())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	_, err = m.Obtain(context.Background(), certs.ObtainOptions{Names: []string{"a.example"}})
	if !errors.Is(err, certs.ErrLocked) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want certs.ErrLocked and DeadlineExceeded", err)
	}
}

func TestManagerStatus(t *testing.T) {
	ctx := context.Background()
	m, iss, _, clock := newTestManager(t)
	day := 24 * time.Hour
	if _, err := m.Obtain(ctx, certs.ObtainOptions{Names: []string{"a.example"}}); err != nil {
		t.Fatal(err)
	}
	iss.Set(func(f *certstest.FakeIssuer) { f.Lifetime = 6 * day })
	if _, err := m.Obtain(ctx, certs.ObtainOptions{Names: []string{"short.example"}}); err != nil {
		t.Fatal(err)
	}
	// A broken one.
	if err := os.MkdirAll(m.Layout.CertDir("broken.example"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.Layout.Fullchain("broken.example"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}

	st, err := m.Status(certs.StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 3 || st[0].Name != "a.example" || st[1].Name != "broken.example" || st[2].Name != "short.example" {
		t.Fatalf("status = %+v", st)
	}
	if st[1].Err == nil {
		t.Error("broken certificate has no error")
	}
	if a := st[0]; a.Warn || a.Expired || a.WarnBefore != 14*day || a.Next.Due || !a.Next.At.Equal(a.NotAfter.Add(-30*day)) {
		t.Errorf("a.example: %+v", a)
	}
	if s := st[2]; s.Warn || s.WarnBefore != day {
		t.Errorf("short.example: %+v", s)
	}

	clock.Advance(5*day + time.Hour)
	st, _ = m.Status(certs.StatusOptions{})
	if s := st[2]; !s.Warn || s.Expired || !s.Next.Due {
		t.Errorf("short.example at day 5: %+v", s)
	}
	clock.Advance(day)
	st, _ = m.Status(certs.StatusOptions{WarnBefore: 100 * day})
	if a, s := st[0], st[2]; !a.Warn || a.Expired || !s.Expired || s.Left >= 0 {
		t.Errorf("day 6: %+v %+v", a, s)
	}
}

func TestManagerObtainReloadFailure(t *testing.T) {
	ctx := context.Background()
	m, iss, rl, _ := newTestManager(t)
	rl.CheckErr = errBoom

	// Webroot: nginx is up, so a failed check is an error; the certificate
	// is stored all the same.
	res, err := m.Obtain(ctx, certs.ObtainOptions{Names: []string{"a.example"}})
	if !errors.Is(err, errBoom) || res == nil || !res.Obtained || res.Reloaded {
		t.Fatalf("webroot: res %+v, err %v", res, err)
	}
	if _, err := (certs.Store{Dir: m.Layout.LiveDir()}).Load("a.example"); err != nil {
		t.Errorf("certificate not stored: %v", err)
	}
	if got := rl.Calls(); got != "check" {
		t.Errorf("reloader %q", got)
	}

	// DNS-01: nginx may not run yet; the failure is only recorded.
	iss.Set(func(f *certstest.FakeIssuer) { f.Challenge = certs.ChallengeDNS })
	res, err = m.Obtain(ctx, certs.ObtainOptions{Names: []string{"b.example"}})
	if err != nil || !res.Obtained || res.Reloaded || !errors.Is(res.ReloadErr, errBoom) {
		t.Fatalf("dns: res %+v, err %v", res, err)
	}
}

// TestManagerObtainReplacesOtherIssuers: a valid certificate that regctl
// did not obtain from the configured CA is replaced, not kept: the
// self-signed one `regctl init --self-signed` writes (no metadata), and
// one obtained from another CA before.
func TestManagerObtainReplacesOtherIssuers(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, m *certs.Manager)
	}{
		{"self-signed, no metadata", func(t *testing.T, m *certs.Manager) {
			dir := m.Layout.CertDir("registry.example.com")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			certPEM, keyPEM := selfSigned(t, "registry.example.com")
			for file, data := range map[string][]byte{certs.FullchainFile: certPEM, certs.PrivkeyFile: keyPEM} {
				if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"another CA", func(t *testing.T, m *certs.Manager) {
			m.Directory = "https://other-ca.example/directory"
			if _, err := m.Obtain(ctx, certs.ObtainOptions{Names: []string{"registry.example.com"}}); err != nil {
				t.Fatal(err)
			}
			m.Directory = testDirectory
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, iss, _, _ := newTestManager(t)
			tt.setup(t, m)
			before := len(iss.Calls())
			res, err := m.Obtain(ctx, certs.ObtainOptions{Names: []string{"registry.example.com"}})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Obtained || len(iss.Calls()) != before+1 {
				t.Fatalf("the certificate was kept: %+v", res)
			}
			if res.Cert.Meta.Directory != testDirectory || res.Cert.Meta.Issuer != "Fake Test CA" {
				t.Errorf("new certificate: %+v", res.Cert.Meta)
			}
			// Now it is the configured CA's: kept.
			res, err = m.Obtain(ctx, certs.ObtainOptions{Names: []string{"registry.example.com"}})
			if err != nil || res.Obtained {
				t.Fatalf("second obtain: %+v, %v", res, err)
			}
		})
	}
}

// selfSigned returns a self-signed certificate for name, valid for a year,
// and its key, as PEM.
func selfSigned(t *testing.T, name string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
