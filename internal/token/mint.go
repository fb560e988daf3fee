package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/regctl/regctl/internal/acl"
	"github.com/regctl/regctl/internal/config"
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

// Minter signs registry tokens. Its key can be replaced while tokens are
// being signed (by the KeyReloader).
//
// The JWS header is the same for every token of one key, and with the x5c
// chain it is most of the token: it is serialised once per key, and each
// token costs one claims encoding and one signature. go-jose, which
// serialises the header again for every token, spent most of a token's
// allocations doing so (docs/performance.md); the tokens are verified with
// go-jose in the tests.
type Minter struct {
	key      atomic.Pointer[mintKey]
	issuer   string
	lifetime time.Duration
	x5c      bool // the header carries the signing chain (config.KeyFormatX5C)
}

// mintKey is one key's signer and its encoded header.
type mintKey struct {
	prefix []byte // base64url(header) + "."
	signer crypto.Signer
	ecdsa  bool // JWS wants r||s, not crypto.Signer's ASN.1
	size   int  // signature length in bytes
}

// jwsHeader is the protected header: the libtrust kid, and the x5c chain
// unless the key format is jwks.
//
// Which registries accept what: with x5c, distribution 2.8, 3.0 and 3.1
// verify the chain against auth.token.rootcertbundle (3.x always does when
// x5c is present, even with auth.token.jwks set). Without x5c, 2.8 finds
// the key by its libtrust kid among rootcertbundle's keys, and 3.x by the
// kid among auth.token.jwks's keys (keys.JWKS names each by its libtrust
// kid), so a jwks-only 3.x registry needs tokens without x5c.
type jwsHeader struct {
	Alg string   `json:"alg"`
	Kid string   `json:"kid"`
	Typ string   `json:"typ"`
	X5C []string `json:"x5c,omitempty"`
}

// NewMinter prepares a minter signing with ks; format is config.KeyFormatX5C
// or config.KeyFormatJWKS.
func NewMinter(ks *keys.Set, issuer string, lifetime time.Duration, format string) (*Minter, error) {
	m := &Minter{issuer: issuer, lifetime: lifetime}
	switch format {
	case config.KeyFormatX5C:
		m.x5c = true
	case config.KeyFormatJWKS:
	default:
		return nil, fmt.Errorf("key format %q: want %s or %s", format, config.KeyFormatX5C, config.KeyFormatJWKS)
	}
	k, err := m.newKey(ks)
	if err != nil {
		return nil, fmt.Errorf("prepare token signer: %w", err)
	}
	m.key.Store(k)
	return m, nil
}

// newKey prepares ks's signer and header for m's format.
func (m *Minter) newKey(ks *keys.Set) (*mintKey, error) {
	k := &mintKey{signer: ks.Signer}
	switch pub := ks.Signer.Public().(type) {
	case *ecdsa.PublicKey:
		if ks.Algorithm != jose.ES256 || pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%s with an ECDSA %s key: want ES256 on P-256", ks.Algorithm, pub.Curve.Params().Name)
		}
		k.ecdsa, k.size = true, 64
	case *rsa.PublicKey:
		if ks.Algorithm != jose.RS256 {
			return nil, fmt.Errorf("%s with an RSA key: want RS256", ks.Algorithm)
		}
		k.size = pub.Size()
	default:
		return nil, fmt.Errorf("unsupported signing key type %T", pub)
	}
	h := jwsHeader{Alg: string(ks.Algorithm), Kid: ks.KeyID, Typ: "JWT"}
	if m.x5c {
		for _, c := range ks.Chain {
			h.X5C = append(h.X5C, base64.StdEncoding.EncodeToString(c.Raw))
		}
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	k.prefix = append(base64.RawURLEncoding.AppendEncode(nil, hj), '.')
	return k, nil
}

// sign returns base64url(header) "." base64url(payload) "."
// base64url(signature), built in place in one allocation of the token's
// size.
func (k *mintKey) sign(payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	body := enc.AppendEncode(make([]byte, 0, enc.EncodedLen(len(payload))), payload)
	h := sha256.New()
	h.Write(k.prefix)
	h.Write(body)
	sig, err := k.signer.Sign(rand.Reader, h.Sum(nil), crypto.SHA256)
	if err != nil {
		return "", err
	}
	if k.ecdsa {
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(sig, &rs); err != nil || len(rest) > 0 {
			return "", fmt.Errorf("malformed ECDSA signature: %v", err) //nolint:errorlint // err may be nil here, and %w would print %!w(<nil>) (trailing bytes)
		}
		sig = make([]byte, 64)
		rs.R.FillBytes(sig[:32])
		rs.S.FillBytes(sig[32:])
	}
	var b strings.Builder
	b.Grow(len(k.prefix) + len(body) + 1 + enc.EncodedLen(len(sig)))
	b.Write(k.prefix)
	b.Write(body)
	b.WriteByte('.')
	b.Write(enc.AppendEncode(body[:0], sig))
	return b.String(), nil
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
	tok, err := m.key.Load().sign(payload)
	if err != nil {
		return "", Claims{}, fmt.Errorf("sign token: %w", err)
	}
	return tok, c, nil
}

// Lifetime is how long minted tokens stay valid.
func (m *Minter) Lifetime() time.Duration { return m.lifetime }
