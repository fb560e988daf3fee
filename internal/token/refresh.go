package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"time"
)

// Refresh tokens are what `docker login` stores in place of the password.
// They are stateless: an HMAC-signed {sub, fingerprint of the user's
// password hash, iat, exp}. Changing the password changes the fingerprint,
// and every use re-checks that the user exists and is active, so deleting,
// disabling, expiring or re-passwording a user revokes its refresh tokens.
// They are not rotated on use (docker drops a rotated one).

const refreshPrefix = "regctl1."

var errBadRefreshToken = errors.New("invalid refresh token")

type refreshClaims struct {
	Subject     string `json:"sub"`
	Fingerprint string `json:"fp"`
	IssuedAt    int64  `json:"iat"`
	Expiry      int64  `json:"exp,omitempty"`
}

type refresher struct {
	key      atomic.Pointer[[]byte] // replaced by the KeyReloader
	lifetime time.Duration          // 0: no expiry
}

func newRefresher(key []byte, lifetime time.Duration) *refresher {
	r := &refresher{lifetime: lifetime}
	r.key.Store(&key)
	return r
}

// fingerprint binds a refresh token to one password hash without
// revealing anything about it.
func (r *refresher) fingerprint(passwordHash string) string {
	m := hmac.New(sha256.New, *r.key.Load())
	m.Write([]byte("password-hash\x00"))
	m.Write([]byte(passwordHash))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

func (r *refresher) sign(payload []byte) []byte {
	m := hmac.New(sha256.New, *r.key.Load())
	m.Write([]byte("refresh-token\x00"))
	m.Write(payload)
	return m.Sum(nil)
}

func (r *refresher) issue(subject, passwordHash string, now time.Time) (string, error) {
	c := refreshClaims{Subject: subject, Fingerprint: r.fingerprint(passwordHash), IssuedAt: now.Unix()}
	if r.lifetime > 0 {
		c.Expiry = now.Add(r.lifetime).Unix()
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return refreshPrefix + enc.EncodeToString(payload) + "." + enc.EncodeToString(r.sign(payload)), nil
}

// parse checks the signature and expiry and returns the claims; the caller
// must still check the user and the fingerprint.
func (r *refresher) parse(tok string, now time.Time) (refreshClaims, error) {
	var c refreshClaims
	rest, ok := strings.CutPrefix(tok, refreshPrefix)
	if !ok || len(tok) > 4096 {
		return c, errBadRefreshToken
	}
	p, s, ok := strings.Cut(rest, ".")
	if !ok {
		return c, errBadRefreshToken
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	sig, err2 := enc.DecodeString(s)
	if err1 != nil || err2 != nil || !hmac.Equal(sig, r.sign(payload)) {
		return c, errBadRefreshToken
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Subject == "" {
		return c, errBadRefreshToken
	}
	if c.Expiry != 0 && now.Unix() >= c.Expiry {
		return c, errors.New("refresh token expired")
	}
	return c, nil
}

// matches reports whether c was issued for the current password hash.
func (r *refresher) matches(c refreshClaims, passwordHash string) bool {
	return hmac.Equal([]byte(c.Fingerprint), []byte(r.fingerprint(passwordHash)))
}
