package token

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/store"
	"github.com/regctl/regctl/internal/testenv"
)

type reloadFixture struct {
	dir   string
	srv   *Server
	rl    *KeyReloader
	h     http.Handler
	clock *testenv.Clock
	log   *testenv.SyncBuffer
	ca    *x509.CertPool
}

func newReloadFixture(t *testing.T) *reloadFixture {
	t.Helper()
	clk := testenv.NewClock(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	dir := filepath.Join(t.TempDir(), "keys")
	if err := keys.Generate(dir, keys.ES256, clk.Now()); err != nil {
		t.Fatal(err)
	}
	ks, err := keys.Load(dir, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	st := &memStore{users: map[string]store.User{}}
	st.setUser(store.User{Username: "waldi", PasswordHash: hash(t, "waldi-secret")})
	cfg := config.TokenServerDefaults()
	cfg.Issuer, cfg.Services = "regctl-test", []string{testService}
	logBuf := &testenv.SyncBuffer{}
	srv, err := New(cfg, st, ks, slog.New(slog.NewTextHandler(logBuf, nil)), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.rules.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	rl, err := NewKeyReloader(srv, dir, ks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewKeyReloader(srv, dir, ks); err == nil {
		t.Error("a second reloader on the same server was accepted")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ks.Chain[1])
	return &reloadFixture{dir: dir, srv: srv, rl: rl, h: rl.Handler(srv.Handler()), clock: clk, log: logBuf, ca: pool}
}

// token gets a token for waldi and returns it with its header's kid, after
// checking its signature with the x5c leaf and the leaf against the CA,
// as the registry does.
func (f *reloadFixture) token(t testing.TB) (string, string) {
	t.Helper()
	tok, kid, err := f.tryToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok, kid
}

func (f *reloadFixture) tryToken() (string, string, error) {
	req := httptest.NewRequest(http.MethodGet, "/auth/token?service="+testService, nil)
	req.SetBasicAuth("waldi", "waldi-secret")
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return "", "", fmt.Errorf("status %d: %s", rec.Code, rec.Body)
	}
	var resp tokenResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		return "", "", err
	}
	kid, err := f.tryVerify(resp.Token)
	return resp.Token, kid, err
}

func (f *reloadFixture) verify(t testing.TB, tok string) string {
	t.Helper()
	kid, err := f.tryVerify(tok)
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

func (f *reloadFixture) tryVerify(tok string) (string, error) {
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		return "", err
	}
	h := jws.Signatures[0].Header
	chain, err := h.Certificates(x509.VerifyOptions{Roots: f.ca, CurrentTime: f.clock.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return "", fmt.Errorf("x5c does not chain to the CA: %w", err)
	}
	if _, err := jws.Verify(chain[0][0].PublicKey); err != nil {
		return "", fmt.Errorf("signature does not verify with the x5c leaf: %w", err)
	}
	kid, err := keys.LibtrustKeyID(chain[0][0].PublicKey)
	if err != nil || kid != h.KeyID {
		return "", fmt.Errorf("kid %q is not the x5c leaf's %q (%v)", h.KeyID, kid, err) //nolint:errorlint // err may be nil here, and %w would print %!w(<nil>)
	}
	return h.KeyID, nil
}

func (f *reloadFixture) jwksKIDs(t *testing.T) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/auth/jwks.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("jwks: %d %s", rec.Code, rec.Header())
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

func TestKeyReloadAfterRotate(t *testing.T) {
	f := newReloadFixture(t)
	oldTok, oldKID := f.token(t)
	if changed, err := f.rl.ReloadIfChanged(); changed || err != nil {
		t.Fatalf("nothing changed, yet ReloadIfChanged = %v, %v", changed, err)
	}
	if got := f.jwksKIDs(t); len(got) != 1 || got[0] != oldKID {
		t.Fatalf("jwks before rotation: %v", got)
	}

	rot, err := keys.Rotate(f.dir, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Not yet polled: still the old key.
	if _, kid := f.token(t); kid != oldKID {
		t.Fatalf("kid %s before the reload", kid)
	}
	changed, err := f.rl.ReloadIfChanged()
	if !changed || err != nil {
		t.Fatalf("ReloadIfChanged after a rotation = %v, %v", changed, err)
	}
	if _, kid := f.token(t); kid != rot.NewKeyID {
		t.Fatalf("kid %s after the reload, want %s", kid, rot.NewKeyID)
	}
	if f.rl.Current().KeyID != rot.NewKeyID {
		t.Errorf("Current() = %s", f.rl.Current().KeyID)
	}
	// The overlap: both keys published; the old token still verifies.
	if got := f.jwksKIDs(t); strings.Join(got, " ") != rot.NewKeyID+" "+oldKID {
		t.Errorf("jwks after rotation: %v, want new then old", got)
	}
	f.verify(t, oldTok)
	if !strings.Contains(f.log.String(), `msg="signing key reloaded" kid=`+rot.NewKeyID) {
		t.Errorf("no reload log line:\n%s", f.log)
	}
	// Other routes still reach the server.
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/livez", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("/livez through the reloader: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/auth/jwks.json", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /auth/jwks.json: %d", rec.Code)
	}
}

// A broken directory (a rotation caught half way, a corrupt file) keeps the
// current key, is logged once, and is picked up once it is whole.
func TestKeyReloadKeepsKeyOnBrokenFiles(t *testing.T) {
	f := newReloadFixture(t)
	_, oldKID := f.token(t)
	crt := filepath.Join(f.dir, keys.SigningCrtFile)
	good, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crt, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if changed, err := f.rl.ReloadIfChanged(); changed || err == nil || !strings.Contains(err.Error(), crt) {
			t.Fatalf("ReloadIfChanged on a truncated certificate = %v, %v", changed, err)
		}
	}
	if n := strings.Count(f.log.String(), "cannot be loaded"); n != 1 {
		t.Errorf("%d warnings for one broken file, want 1:\n%s", n, f.log)
	}
	if _, kid := f.token(t); kid != oldKID {
		t.Fatalf("kid %s with a broken directory", kid)
	}
	if err := f.rl.Reload(); err == nil {
		t.Error("Reload of a broken directory succeeded")
	}

	if err := os.WriteFile(crt, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Rotate(f.dir, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if changed, err := f.rl.ReloadIfChanged(); !changed || err != nil {
		t.Fatalf("after repair: %v, %v", changed, err)
	}
	if _, kid := f.token(t); kid == oldKID {
		t.Fatal("still the old key after the repair")
	}
}

func TestKeyReloadExpiryWarnings(t *testing.T) {
	f := newReloadFixture(t)
	notAfter := f.rl.Current().NotAfter()

	f.rl.CheckExpiry()
	if strings.Contains(f.log.String(), "expires soon") {
		t.Fatalf("warning with a year left:\n%s", f.log)
	}
	f.clock.Set(notAfter.Add(-10 * 24 * time.Hour))
	f.rl.tick() // more than a day since the last check
	if !strings.Contains(f.log.String(), `msg="signing certificate expires soon"`) || !strings.Contains(f.log.String(), "days_left=10") ||
		!strings.Contains(f.log.String(), "regctl keys rotate --dir "+f.dir) {
		t.Fatalf("no expiry warning 10 days before:\n%s", f.log)
	}
	f.clock.Advance(time.Hour)
	f.rl.tick()
	if n := strings.Count(f.log.String(), "expires soon"); n != 1 {
		t.Errorf("%d warnings within a day, want 1", n)
	}
	f.clock.Advance(ExpiryCheckInterval)
	f.rl.tick()
	if n := strings.Count(f.log.String(), "expires soon"); n != 2 {
		t.Errorf("%d warnings after a day, want 2", n)
	}
	f.clock.Set(notAfter.Add(time.Minute))
	f.rl.CheckExpiry()
	if !strings.Contains(f.log.String(), `level=ERROR msg="signing certificate has expired`) {
		t.Errorf("no error after expiry:\n%s", f.log)
	}
}

// Tokens are signed while the key changes: every token verifies and names
// the key that signed it (run with -race).
func TestKeyReloadConcurrent(t *testing.T) {
	f := newReloadFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var minted atomic.Int64
	kids := sync.Map{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, kid, err := f.tryToken()
				if err != nil {
					t.Error(err)
					return
				}
				kids.Store(kid, true)
				minted.Add(1)
			}
		}()
	}
	go f.rl.Run(ctx, time.Millisecond)
	want := map[string]bool{f.rl.Current().KeyID: true}
	for range 5 {
		rot, err := keys.Rotate(f.dir, f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		want[rot.NewKeyID] = true
		deadline := time.Now().Add(10 * time.Second)
		for f.rl.Current().KeyID != rot.NewKeyID {
			if time.Now().After(deadline) {
				t.Fatal("the poller did not pick up the rotation")
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	kids.Range(func(k, _ any) bool {
		if !want[k.(string)] {
			t.Errorf("a token carried kid %s, not one of the rotated keys", k)
		}
		return true
	})
	t.Logf("%d tokens during 5 rotations", minted.Load())
}

// TestRefreshKeyReload: a signing-key rotation keeps refresh tokens valid;
// a new refresh.key (keys rotate --refresh-key) revokes them at the next
// reload, and new ones work.
func TestRefreshKeyReload(t *testing.T) {
	f := newReloadFixture(t)
	now := f.clock.Now()
	hash := "$2a$10$placeholderplaceholderplaceholderplaceholderplace"
	refreshOK := func(tok string) bool {
		c, err := f.srv.refresh.parse(tok, now)
		return err == nil && f.srv.refresh.matches(c, hash)
	}
	old, err := f.srv.refresh.issue("waldi", hash, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Rotate(f.dir, now); err != nil {
		t.Fatal(err)
	}
	if changed, err := f.rl.ReloadIfChanged(); !changed || err != nil {
		t.Fatalf("reload after a rotation: %v, %v", changed, err)
	}
	if !refreshOK(old) {
		t.Fatal("a signing-key rotation revoked a refresh token")
	}
	if strings.Contains(f.log.String(), "refresh key reloaded") {
		t.Error("refresh key reported as reloaded after a signing-key rotation")
	}

	if err := keys.RotateRefreshKey(f.dir); err != nil {
		t.Fatal(err)
	}
	if !refreshOK(old) {
		t.Fatal("refresh token revoked before the reload")
	}
	if changed, err := f.rl.ReloadIfChanged(); !changed || err != nil {
		t.Fatalf("reload after a new refresh.key: %v, %v", changed, err)
	}
	if refreshOK(old) {
		t.Error("refresh token still valid after refresh.key was replaced")
	}
	fresh, err := f.srv.refresh.issue("waldi", hash, now)
	if err != nil || !refreshOK(fresh) {
		t.Errorf("refresh token issued after the reload: %v", err)
	}
	if !strings.Contains(f.log.String(), "refresh key reloaded") {
		t.Errorf("no log line for the new refresh key:\n%s", f.log)
	}
}
