package provision

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/regctl/regctl/internal/certs"
	"github.com/regctl/regctl/internal/config"
	"github.com/regctl/regctl/internal/keys"
	"github.com/regctl/regctl/internal/redact"
	"github.com/regctl/regctl/internal/render"
)

// MongoUID and MongoGID own the MongoDB password file: the official mongo
// image reads MONGO_INITDB_ROOT_PASSWORD_FILE as its mongodb user (999)
// after dropping root.
const (
	MongoUID = 999
	MongoGID = 999
)

// FFDHE2048 returns the RFC 7919 ffdhe2048 group as PEM, the DH
// parameters Mozilla recommends for its intermediate profile: nothing to
// compute, nothing secret. `regctl certs dhparams` can replace the file.
func FFDHE2048() []byte {
	p, err := certs.FFDHE(2048)
	if err != nil {
		panic(err) // 2048 is one of the RFC 7919 sizes
	}
	b, err := p.PEM()
	if err != nil {
		panic(err) // encoding fixed, valid parameters cannot fail
	}
	return b
}

// Generated is what SecretFiles.Ensure created (paths below the root).
type Generated []string

// SecretFiles are the generated secrets and keys of the host below
// Config.Root.
type SecretFiles struct {
	Host   Host
	Config *config.Config
	// Join is a host joining a deployment (regctl init --join): the
	// registry's HTTP secret and the signing keys must be there already
	// (copied, and made with regctl keys request/sign/join), never
	// generated, or this host's registry and tokens would not agree with
	// the others'.
	Join bool
	// Known, if set, learns every secret value before it is written
	// through Host or returned, so that whatever prints (a dry-run host,
	// a diff, an error) can mask it.
	Known *redact.Set
}

// EnsureSecrets is SecretFiles{Host: h, Config: c}.Ensure(now), for callers
// that print nothing.
func EnsureSecrets(h Host, c *config.Config, now time.Time) (Generated, error) {
	return SecretFiles{Host: h, Config: c}.Ensure(now)
}

// LoadSecrets is SecretFiles{Host: h, Config: c}.Load(), for callers that
// print nothing.
func LoadSecrets(h Host, c *config.Config) (render.Secrets, error) {
	return SecretFiles{Host: h, Config: c}.Load()
}

// Ensure creates, once, everything secret or unique to this host: the
// registry's HTTP secret, the MongoDB password (managed MongoDB only), the
// token-signing keys and the DH parameters. Existing files are never
// regenerated; only their modes and owners are corrected.
func (sf SecretFiles) Ensure(now time.Time) (Generated, error) {
	h, c := sf.Host, sf.Config
	var gen Generated
	abs := func(rel string) string { return filepath.Join(c.Root, filepath.FromSlash(rel)) }
	if err := ensureDirMode(h, c.Root, render.ModeDir, false); err != nil {
		return nil, err
	}
	if err := ensureDirMode(h, abs(render.SecretsDir), render.ModeSecretDir, true); err != nil {
		return nil, err
	}

	secretFile := func(rel string, uid, gid int) error {
		p := abs(rel)
		fi, err := h.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) && sf.Join && rel == render.RegistrySecretFile:
			return fmt.Errorf("%s is missing: a joining host shares the first host's (copy it from there, mode 0600); every registry behind one name needs the same http.secret", p)
		case errors.Is(err, fs.ErrNotExist):
			v, err := randomHex(32)
			if err != nil {
				return err
			}
			sf.Known.Add(v)
			if err := h.WriteFile(p, []byte(v+"\n"), render.ModeSecret); err != nil {
				return err
			}
			gen = append(gen, rel)
		case err != nil:
			return err
		case !fi.Mode().IsRegular():
			return fmt.Errorf("%s: want a regular file, found %s", p, fi.Mode().Type())
		case fi.Mode().Perm() != render.ModeSecret:
			b, err := h.ReadFile(p)
			if err != nil {
				return err
			}
			sf.Known.Add(strings.TrimSpace(string(b)))
			if err := h.WriteFile(p, b, render.ModeSecret); err != nil {
				return err
			}
		}
		if uid >= 0 {
			fi, err := h.Stat(p)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if fu, fg, ok := ownerOf(fi, err); !ok || fu != uid || fg != gid {
				return h.Chown(p, uid, gid)
			}
		}
		return nil
	}
	if err := secretFile(render.RegistrySecretFile, -1, -1); err != nil {
		return nil, err
	}
	if c.ManagedMongo() {
		if err := secretFile(render.MongoPasswordFile, MongoUID, MongoGID); err != nil {
			return nil, err
		}
	}

	keysDir := abs(render.KeysDir)
	ok, err := Exists(h, filepath.Join(keysDir, keys.SigningKeyFile))
	if err != nil {
		return nil, err
	}
	if !ok && sf.Join {
		return nil, fmt.Errorf("%s has no signing key: a joining host gets its own under the first host's CA with regctl keys request, sign and join (docs/scale-out.md)", keysDir)
	}
	if !ok {
		if err := generateKeys(h, sf.Known, keysDir, c.Token.KeyAlgorithm, now); err != nil {
			return nil, err
		}
		gen = append(gen, render.KeysDir+"/")
	} else if err := ensureDirMode(h, keysDir, render.ModeSecretDir, true); err != nil {
		return nil, err
	}

	if err := ensureDirMode(h, abs(render.CertsDir), render.ModeDir, false); err != nil {
		return nil, err
	}
	dh := abs(render.DHParamsFile)
	if ok, err := Exists(h, dh); err != nil {
		return nil, err
	} else if !ok {
		if err := h.WriteFile(dh, FFDHE2048(), render.ModeFile); err != nil {
			return nil, err
		}
		gen = append(gen, render.DHParamsFile)
	}
	return gen, nil
}

func ownerOf(fi fs.FileInfo, err error) (int, int, bool) {
	if err != nil || fi == nil {
		return 0, 0, false
	}
	return owner(fi)
}

// ensureDirMode creates dir with mode, or corrects the mode of an existing
// one when fix is set.
func ensureDirMode(h Host, dir string, mode fs.FileMode, fix bool) error {
	fi, err := h.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return h.Mkdir(dir, mode)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s: want a directory, found %s", dir, fi.Mode().Type())
	case fix && fi.Mode().Perm() != mode:
		return h.Mkdir(dir, mode)
	}
	return nil
}

// generateKeys runs keys.Generate in a private temporary directory and
// copies the result through h, so a dry run shows it and a test records
// it. The private files' contents are added to known first.
func generateKeys(h Host, known *redact.Set, dir, alg string, now time.Time) error {
	a, err := keys.ParseAlgorithm(alg)
	if err != nil {
		return fmt.Errorf("token.key-algorithm: %w", err)
	}
	tmp, err := os.MkdirTemp("", "regctl-keys-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	kd := filepath.Join(tmp, "keys")
	if err := keys.Generate(kd, a, now); err != nil {
		return fmt.Errorf("generate keys: %w", err)
	}
	entries, err := os.ReadDir(kd)
	if err != nil {
		return err
	}
	if err := h.Mkdir(dir, render.ModeSecretDir); err != nil {
		return err
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(kd, e.Name()))
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 == 0 {
			known.Add(string(b))
		}
		if err := h.WriteFile(filepath.Join(dir, e.Name()), b, fi.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// Load reads the generated secrets and the keys' public files that the
// rendered configuration embeds or copies.
func (sf SecretFiles) Load() (render.Secrets, error) {
	h, c := sf.Host, sf.Config
	var s render.Secrets
	abs := func(rel string) string { return filepath.Join(c.Root, filepath.FromSlash(rel)) }
	read := func(rel string) ([]byte, error) {
		b, err := h.ReadFile(abs(rel))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s is missing: run `regctl init` (or `regctl render`, which generates secrets once)", abs(rel))
		}
		return b, err
	}
	b, err := read(render.RegistrySecretFile)
	if err != nil {
		return s, err
	}
	s.RegistryHTTPSecret = strings.TrimSpace(string(b))
	sf.Known.Add(s.RegistryHTTPSecret)
	if c.ManagedMongo() {
		if b, err = read(render.MongoPasswordFile); err != nil {
			return s, err
		}
		s.MongoPassword = strings.TrimSpace(string(b))
		sf.Known.Add(s.MongoPassword)
	}
	if s.TokenBundle, err = read(path.Join(render.KeysDir, keys.BundleFile)); err != nil {
		return s, err
	}
	if s.TokenJWKS, err = read(path.Join(render.KeysDir, keys.JWKSFile)); err != nil {
		return s, err
	}
	return s, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// SelfSigned is a certificate for names, signed by its own EC P-256 key:
// for `regctl init --self-signed` until certificates come from ACME.
func SelfSigned(names []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"regctl self-signed"}},
		DNSNames:              names,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// IsSelfSigned reports whether the first certificate in a PEM chain is
// self-signed (issued by itself).
func IsSelfSigned(chain []byte) (bool, error) {
	block, _ := pem.Decode(chain)
	if block == nil || block.Type != "CERTIFICATE" {
		return false, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false, err
	}
	return bytes.Equal(cert.RawIssuer, cert.RawSubject) &&
		cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil, nil
}
