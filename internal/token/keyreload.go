package token

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regctl/regctl/internal/keys"
)

// KeyReloader lets a running Server change its signing key without a
// restart, for `regctl keys rotate`: it reloads the keys directory when its
// files change (ReloadIfChanged, polled by Run) or when asked (Reload, on
// SIGHUP), and swaps the key atomically. Tokens signed before the swap stay
// valid: they carry their own x5c chain to the CA the registry trusts.
//
// The JWKS the server publishes comes from the reloader (see Handler): the
// current key and, during the overlap, the previous one.
//
// A directory that cannot be loaded (a rotation half done, a corrupt file)
// is logged once per distinct error and retried at the next poll; the
// server keeps signing with the key it has. A rotation leaves refresh.key
// alone, so refresh tokens outlive it; a new refresh.key (written by hand,
// to revoke every refresh token at once) is picked up the same way.
type KeyReloader struct {
	dir     string
	minter  *Minter
	refresh *refresher
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex // serialises reloads and expiry warnings
	stamp    string     // keys.Stamp of the directory at the last successful load
	lastErr  string     // last load error logged
	lastWarn time.Time  // last expiry check

	state atomic.Pointer[keyState]
}

type keyState struct {
	set  *keys.Set
	jwks []byte
}

// ExpiryCheckInterval is how often Run repeats the signing certificate
// expiry warning.
const ExpiryCheckInterval = 24 * time.Hour

// NewKeyReloader makes the signing key of s replaceable; ks is the set s was
// built with, loaded from dir. Call it once, before s serves requests.
func NewKeyReloader(s *Server, dir string, ks *keys.Set) (*KeyReloader, error) {
	if s.keyReloader {
		return nil, errors.New("the server already has a key reloader")
	}
	s.keyReloader = true
	r := &KeyReloader{
		dir:     dir,
		minter:  s.minter,
		refresh: s.refresh,
		log:     s.log,
		now:     s.now,
		stamp:   keys.Stamp(dir),
	}
	now := s.now()
	jwks, err := ks.JWKS(now)
	if err != nil {
		return nil, err
	}
	r.state.Store(&keyState{set: ks, jwks: jwks})
	return r, nil
}

// Current returns the key set tokens are signed with.
func (r *KeyReloader) Current() *keys.Set { return r.state.Load().set }

// Reload loads the keys directory and, if it holds a valid set, signs
// every later token with it.
func (r *KeyReloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reload(keys.Stamp(r.dir))
}

// ReloadIfChanged reloads the keys directory if its files changed since
// the last successful load; it reports whether the key set was replaced.
func (r *KeyReloader) ReloadIfChanged() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp := keys.Stamp(r.dir)
	if stamp == r.stamp {
		return false, nil
	}
	if err := r.reload(stamp); err != nil {
		return false, err
	}
	return true, nil
}

func (r *KeyReloader) reload(stamp string) error {
	now := r.now()
	old := r.state.Load().set
	ks, err := keys.Load(r.dir, now)
	if err == nil {
		err = r.install(ks, now)
	}
	if err != nil {
		if msg := err.Error(); msg != r.lastErr {
			r.lastErr = msg
			r.log.Warn("signing keys changed but cannot be loaded; still signing with the current key",
				"dir", r.dir, "kid", old.KeyID, "error", msg)
		}
		return err
	}
	r.lastErr = ""
	r.stamp = stamp
	if ks.KeyID != old.KeyID {
		r.log.Info("signing key reloaded", "kid", ks.KeyID, "previous_kid", old.KeyID,
			"signing_cert_not_after", ks.NotAfter().UTC().Format(time.RFC3339))
	}
	r.checkExpiry(now)
	return nil
}

func (r *KeyReloader) install(ks *keys.Set, now time.Time) error {
	k, err := r.minter.newKey(ks)
	if err != nil {
		return fmt.Errorf("prepare token signer: %w", err)
	}
	jwks, err := ks.JWKS(now)
	if err != nil {
		return err
	}
	// The state first: a token signed with the new key is then never
	// served while the JWKS still lacks it.
	r.state.Store(&keyState{set: ks, jwks: jwks})
	r.minter.key.Store(k)
	if !hmac.Equal(*r.refresh.key.Load(), ks.RefreshKey) {
		rk := ks.RefreshKey
		r.refresh.key.Store(&rk)
		r.log.Warn("refresh key reloaded: refresh tokens issued before no longer work (docker login again)", "dir", r.dir)
	}
	return nil
}

// CheckExpiry logs a warning if less than keys.ExpiryWarning remains of the
// signing certificate, and an error once it has expired.
func (r *KeyReloader) CheckExpiry() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkExpiry(r.now())
}

func (r *KeyReloader) checkExpiry(now time.Time) {
	r.lastWarn = now
	ks := r.state.Load().set
	left := ks.NotAfter().Sub(now)
	fix := "regctl keys rotate --dir " + r.dir
	switch {
	case left <= 0:
		r.log.Error("signing certificate has expired: the registry rejects every token", "kid", ks.KeyID,
			"signing_cert_not_after", ks.NotAfter().UTC().Format(time.RFC3339), "fix", fix)
	case left < keys.ExpiryWarning:
		r.log.Warn("signing certificate expires soon", "kid", ks.KeyID,
			"signing_cert_not_after", ks.NotAfter().UTC().Format(time.RFC3339),
			"days_left", strconv.Itoa(int(left/(24*time.Hour))), "fix", fix)
	}
}

// Run polls the keys directory every interval until ctx ends, and repeats
// the expiry warning every ExpiryCheckInterval.
func (r *KeyReloader) Run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, r.tick)
}

func (r *KeyReloader) tick() {
	_, _ = r.ReloadIfChanged()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.lastWarn) >= ExpiryCheckInterval {
		r.checkExpiry(now)
	}
}

// Handler serves GET /auth/jwks.json from the current key set (the
// current and the previous key) and passes every other request to next
// (the Server's Handler).
func (r *KeyReloader) Handler(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", next)
	mux.HandleFunc("GET /auth/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		jwks := r.state.Load().jwks
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Content-Length", strconv.Itoa(len(jwks)))
		_, _ = w.Write(jwks)
	})
	return mux
}
