package token

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/keys"
)

// Leeway is how far nbf lies in the past, to absorb clock skew between the
// token server and the registry.
const Leeway = 10 * time.Second

// Claims is the registry token's claim set. aud is a single string:
// distribution 2.8 rejects an array.
type Claims struct {
	Issuer    string      `json:"iss"`
	Subject   string      `json:"sub"`
	Audience  string      `json:"aud"`
	Expiry    int64       `json:"exp"`
	NotBefore int64       `json:"nbf"`
	IssuedAt  int64       `json:"iat"`
	ID        string      `json:"jti"`
	Access    []acl.Scope `json:"access"`
}

// Minter signs registry tokens with one key set.
type Minter struct {
	signer   jose.Signer
	issuer   string
	lifetime time.Duration
}

// NewMinter prepares a signer whose header carries both the libtrust kid
// (distribution 2.8) and the x5c chain (every version).
func NewMinter(ks *keys.Set, issuer string, lifetime time.Duration) (*Minter, error) {
	x5c := make([]string, len(ks.Chain))
	for i, c := range ks.Chain {
		x5c[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", ks.KeyID).WithHeader("x5c", x5c)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: ks.Algorithm, Key: ks.Signer}, opts)
	if err != nil {
		return nil, fmt.Errorf("prepare token signer: %w", err)
	}
	return &Minter{signer: s, issuer: issuer, lifetime: lifetime}, nil
}

// Granted drops the scopes without actions: a token lists only what it
// grants.
func Granted(access []acl.Scope) []acl.Scope {
	granted := make([]acl.Scope, 0, len(access))
	for _, s := range access {
		if len(s.Actions) > 0 {
			granted = append(granted, s)
		}
	}
	return granted
}

// Mint signs a token for subject (empty when anonymous) and audience
// (the registry's service) granting access.
func (m *Minter) Mint(subject, audience string, access []acl.Scope, now time.Time) (string, Claims, error) {
	if access == nil {
		access = []acl.Scope{}
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", Claims{}, err
	}
	c := Claims{
		Issuer:    m.issuer,
		Subject:   subject,
		Audience:  audience,
		Expiry:    now.Add(m.lifetime).Unix(),
		NotBefore: now.Add(-Leeway).Unix(),
		IssuedAt:  now.Unix(),
		ID:        hex.EncodeToString(jti[:]),
		Access:    access,
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", Claims{}, err
	}
	jws, err := m.signer.Sign(payload)
	if err != nil {
		return "", Claims{}, fmt.Errorf("sign token: %w", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return "", Claims{}, err
	}
	return tok, c, nil
}

// Lifetime is how long minted tokens stay valid.
func (m *Minter) Lifetime() time.Duration { return m.lifetime }
